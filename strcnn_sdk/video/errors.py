"""What goes wrong with media: the errors and warnings raised about inputs and outputs, and closing a container
that an error abandons."""

from __future__ import annotations

import av


class MediaError(ValueError):
    """An input or output that cannot be read or written; the message says what and what to do."""


class NotAVideo(MediaError):
    """A file that is no video at all, rather than a damaged one: source code under an extension that it shares
    with video (TypeScript's .ts and .mts), or a container without a video stream."""


class StreamLost(MediaError):
    """A network input dropped and could not be reopened in time; what was read before is kept."""


class OutputClosed(MediaError):
    """The program reading standard output closed it (a player was quit): the run stops there."""


class MediaWarning(UserWarning):
    """A stream of the input that the output leaves out or converts; the message names it."""


def close_quietly(container) -> None:
    """Close a container that is being abandoned after an error, which is what gets reported."""
    try:
        container.close()
    except (ValueError, av.FFmpegError):
        pass
