"""The protocol boundary: the only package that imports nio or speaks HTTP to the homeserver.

It is a leaf: it imports nothing from the apps, takes plain values and returns plain values, and turns
every homeserver failure into one of the exceptions in `errors`.
"""
