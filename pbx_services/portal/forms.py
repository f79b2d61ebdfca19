"""Form values and their errors, for pages that show each error next to its field.

A view validates what it was posted, collects `FieldErrors` (or turns a service's
`InvalidValue` into one with `errors.from_invalid(exc, fields)`) and renders the form again
with status 400; the template's `field()` macro (templates/_forms.html) shows each message
under its input, marked `aria-invalid`:

    errors = FieldErrors()
    try:
        service.add_user(form["extension"], ...)
    except InvalidValue as exc:
        errors.from_invalid(exc, ("extension", "password", "email"))
    if errors:
        return render_template("users/new.html", form=form, errors=errors), 400
"""

from __future__ import annotations

from collections.abc import Iterable

GENERAL = "_form"
"""Where an error that belongs to no one field goes (shown above the form)."""


class FieldErrors(dict[str, str]):
    """Field name -> its error message (the first one given)."""

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, message)

    def from_invalid(self, error: Exception, fields: Iterable[str]) -> None:
        """The service's message goes to the field it starts with (`"extension 'x' may only..."`,
        `"email ..."`, `"max_calls ..."` or `"max calls ..."`), else above the form."""
        message = str(error)
        lowered = message.lower()
        for field in sorted(fields, key=len, reverse=True):
            for spelling in {field, field.replace("_", " "), field.replace("_", "-")}:
                if lowered.startswith(spelling.lower()):
                    self.add(field, message)
                    return
        self.add(GENERAL, message)

    @property
    def general(self) -> str | None:
        return self.get(GENERAL)
