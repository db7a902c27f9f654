"""The audit writer keeps who acted, from where, and survives the actor's deletion."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from records.audit import record_action
from records.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_an_entry_names_the_admin_and_address_and_outlives_the_admin():
    admin = get_user_model().objects.create_user("ada", password="x", is_staff=True)
    request = RequestFactory().post("/admin/", REMOTE_ADDR="192.0.2.7")
    request.user = admin
    record_action(action="person.deactivate", target="@bob:localhost", request=request)
    admin.delete()
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_name, entry.ip) == (None, "ada", "192.0.2.7")
    assert (entry.action, entry.target) == ("person.deactivate", "@bob:localhost")


def test_an_anonymous_or_scheduled_action_is_the_systems():
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    record_action(action="retention.purge", request=request)
    record_action(action="retention.purge", details={"events": 3})
    assert list(AuditEntry.objects.values_list("actor_name", flat=True)) == ["", ""]
