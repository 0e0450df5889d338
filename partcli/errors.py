"""Errors meant for users: the CLI prints their message on one line and exits with code 2."""


class PartcliError(Exception):
    """A problem with the user's input (a file, a folder or an option), not a bug in partcli.

    The message must name the file or option at fault and say what to do about it.
    """
