"""The one exception type the data package raises for problems with files on disk, and how errors read in one line."""


class DatasetError(Exception):
    """A dataset cannot be read; the message is one line naming the dataset, the root and what should be there."""


def one_line(error: BaseException) -> str:
    """"ErrorType: message" with the message's whitespace, newlines included, collapsed: for one-line reports."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"
