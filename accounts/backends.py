"""Django authentication through the homeserver, so Django admin sign-in checks Matrix passwords too."""

from django.contrib.auth.backends import ModelBackend

from accounts import services
from accounts.matrix.errors import MatrixError


class MatrixPasswordBackend(ModelBackend):
    """Authenticates a Matrix user id or localpart against the configured homeserver."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or not password:
            return None
        try:
            user = services.account_sign_in(username=username, password=password)
        except MatrixError:
            return None
        return user if self.user_can_authenticate(user) else None
