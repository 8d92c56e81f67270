"""The one exception type the data package raises for problems with files on disk."""


class DatasetError(Exception):
    """A dataset cannot be read; the message is one line naming the dataset, the root and what should be there."""
