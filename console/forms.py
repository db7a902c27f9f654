"""The console's forms: the person form with its deactivation, the leaver's options, the CSV
import and the room actions."""

from django import forms
from django.contrib.auth.forms import UserChangeForm
from django.core.exceptions import ValidationError

from accounts.forms import MatrixUserChangeForm
from accounts.matrix.errors import MatrixError
from accounts.models import MatrixAccount
from console import people


def colleague_choices(exclude: list[int] = ()) -> list[tuple[str, str]]:
    accounts = MatrixAccount.objects.filter(is_active=True).exclude(user_id__in=list(exclude))
    return [("", "nobody (keep rooms as they are)")] + [
        (mxid, mxid) for mxid in accounts.values_list("mxid", flat=True)
    ]


class PersonChangeForm(MatrixUserChangeForm):
    """Unticking Active makes the person a leaver: rooms handed over, deactivated, audited."""

    hand_over_to = forms.ChoiceField(
        required=False,
        label="Hand rooms over to",
        help_text="When deactivating: this colleague becomes admin of every room this person "
        "administers, before the account goes.",
    )
    request = None  # set by PersonAdmin.get_form, for the audit log

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hand_over_to"].choices = colleague_choices([self.instance.pk])

    def clean(self):
        cleaned = UserChangeForm.clean(self)
        if self.errors or "is_active" not in self.changed_data:
            return cleaned
        account = getattr(self.instance, "matrix_account", None)
        if cleaned.get("is_active"):
            if account is not None and not account.is_active:
                raise ValidationError(
                    "This person's Matrix account was deactivated on the homeserver and cannot be "
                    "reactivated here. Create a new person instead."
                )
            return cleaned
        try:
            people.person_deactivate(
                user=self.instance,
                erase=cleaned.get("erase_matrix_data", False),
                hand_over_to=cleaned.get("hand_over_to", ""),
                request=self.request,
            )
        except MatrixError as error:
            raise ValidationError(f"Not deactivated: {error.message}") from None
        return cleaned


class DeactivateForm(forms.Form):
    """The options of the "deactivate selected people" action."""

    erase = forms.BooleanField(
        required=False,
        label="Also erase their Matrix data",
        help_text="The homeserver forgets their messages for anyone who joins later and removes "
        "their profile. Cannot be undone.",
    )
    hand_over_to = forms.ChoiceField(required=False, label="Hand their rooms over to")

    def __init__(self, *args, exclude: list[int] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hand_over_to"].choices = colleague_choices(exclude)


class ImportForm(forms.Form):
    csv_file = forms.FileField(required=False, label="CSV file")
    csv_text = forms.CharField(
        required=False,
        label="or the CSV text",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "autocomplete": "off"}),
        help_text="Header row: username,password,email,first_name,last_name (the last three may "
        "be left out).",
    )
    checked = forms.CharField(required=False, widget=forms.HiddenInput)

    def text(self) -> str:
        upload = self.cleaned_data.get("csv_file")
        if upload is not None:
            if upload.size > 2_000_000:
                raise ValidationError("The file is larger than 2 MB: split it.")
            try:
                return upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError("The file is not UTF-8 text: save it as CSV UTF-8.") from None
        return self.cleaned_data.get("csv_text", "")


class MakeRoomAdminForm(forms.Form):
    user_id = forms.ChoiceField(label="Make this person room admin")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user_id"].choices = colleague_choices()[1:]


class DeleteRoomForm(forms.Form):
    purge = forms.BooleanField(
        required=False,
        initial=True,
        label="Purge its history from the homeserver",
        help_text="Removes the room's events from the homeserver's database. The workspace's own "
        "archive keeps what the law requires.",
    )
    block = forms.BooleanField(
        required=False, label="Block it, so nobody on this homeserver can join it again"
    )
    message = forms.CharField(
        required=False, max_length=500, label="Message to the members (optional)"
    )
