"""User-facing errors.

`UserError` is raised for anything the user can fix (bad recipe, missing
file, too few examples). The CLI turns it into one line on stderr and exit
code 2; anything else is a bug and exits 1.
"""


class UserError(Exception):
    """A problem with the user's input, explained in one line."""
