"""User-facing errors.

`UserError` is raised for anything the user can fix (bad recipe, missing
file, too few examples). It subclasses `ValueError`, so library callers can
catch it as the bad-value error it is; the CLI turns it into one line on
stderr and exit code 2. Anything else is a bug and exits 1.
"""


class UserError(ValueError):
    """A problem with the user's input, explained in one line."""
