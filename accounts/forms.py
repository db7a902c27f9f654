"""Forms for signing in and for the admin console. Homeserver calls happen last in `clean()`, so a
refusal becomes a form error and nothing is saved locally."""

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from accounts import services, throttling
from accounts.matrix.errors import InvalidCredentials, InvalidUsername, MatrixError, UsernameTaken


class SignInForm(forms.Form):
    username = forms.CharField(
        label="Matrix user name",
        max_length=255,
        help_text="Your user name (alice) or full Matrix ID (@alice:example.org).",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        username = cleaned["username"]
        # Throttled before the homeserver hears of it: a locked-out name or address costs it nothing.
        if throttling.sign_in_locked(self.request, username):
            raise ValidationError(throttling.lockout_message(), code="locked")
        try:
            self.user = services.account_sign_in(username=username, password=cleaned["password"])
        except InvalidCredentials as error:
            throttling.sign_in_failed(self.request, username)
            raise ValidationError(error.message, code=error.errcode or "matrix") from None
        except MatrixError as error:  # the homeserver down or busy: not the person's guess
            raise ValidationError(error.message, code=error.errcode or "matrix") from None
        return cleaned

    @property
    def locked_out(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, code="locked")


class MatrixUserCreationForm(UserCreationForm):
    """Admin's "add user": creates the Matrix account on the homeserver, then the person."""

    class Meta(UserCreationForm.Meta):
        fields = ("username", "first_name", "last_name", "email")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        password = cleaned.get("password1")
        try:
            password_validation.validate_password(password, self.instance)
        except ValidationError as error:
            self.add_error("password2", error)
            return cleaned
        try:
            localpart = services.check_new_localpart(cleaned["username"])
            self.matrix_session = services.account_register_on_homeserver(
                localpart=localpart,
                password=password,
                displayname=f"{cleaned.get('first_name', '')} {cleaned.get('last_name', '')}",
            )
        except (UsernameTaken, InvalidUsername) as error:
            self.add_error("username", error.message)
        except MatrixError as error:
            raise ValidationError(error.message) from None
        return cleaned


class MatrixUserChangeForm(UserChangeForm):
    """Admin's "change user": unticking Active deactivates the Matrix account (optionally erased)."""

    erase_matrix_data = forms.BooleanField(
        required=False,
        label="Erase Matrix data when deactivating",
        help_text="Also ask the homeserver to erase this person's messages for anyone who joins later "
        "and to remove their profile (cannot be undone).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self.instance, "matrix_account", None) is not None and "password" in self.fields:
            self.fields["password"].help_text = (
                "This person's password is kept by the Matrix homeserver, not here; the button "
                "changes it there (the same password works in every Matrix app)."
            )

    def clean(self):
        cleaned = super().clean()
        if self.errors or "is_active" not in self.changed_data:
            return cleaned
        account = getattr(self.instance, "matrix_account", None)
        if account is None:
            return cleaned
        if cleaned.get("is_active"):
            if not account.is_active:
                raise ValidationError(
                    "This person's Matrix account was deactivated on the homeserver and cannot be "
                    "reactivated here. Create a new person instead."
                )
            return cleaned
        try:
            services.account_deactivate(
                account=account, erase=cleaned.get("erase_matrix_data", False)
            )
        except MatrixError as error:
            raise ValidationError(f"Not deactivated: {error.message}") from None
        return cleaned


class MatrixPasswordChangeForm(AdminPasswordChangeForm):
    """Admin's "change password": for a Matrix-backed person the password lives on the homeserver."""

    def __init__(self, user, *args, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.account = getattr(user, "matrix_account", None)
        if self.account is not None:
            self.fields.pop("usable_password", None)
            self.fields["password1"].required = True
            self.fields["password2"].required = True

    def clean(self):
        cleaned = super().clean()
        if self.errors or self.account is None:
            return cleaned
        try:
            services.account_set_password(account=self.account, password=cleaned["password1"])
        except MatrixError as error:
            raise ValidationError(f"Password not changed: {error.message}") from None
        return cleaned

    def save(self, commit=True):
        if self.account is None:
            return super().save(commit=commit)
        return self.user
