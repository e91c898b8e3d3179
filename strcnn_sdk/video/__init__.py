"""Reading and writing video (PyAV) and image folders, frame by frame, as RGB uint8 arrays.

Inputs are files, folders or globs of images, standard input (`-`), network URLs and FFmpeg input devices
(`FORMAT:SPEC`); outputs are files, image folders and standard output (`-`). See `locate`.

Colour: a video's own matrix and range are used to decode it (BT.709 assumed for untagged HD, BT.601 below
720 lines, limited range when untagged) and the same are used to encode and tagged on the output, so colours
survive a round trip. Timing: output frames keep the input's timestamps and time base, so constant rates stay
exact (30000/1001) and variable rates keep their timestamps. Audio, subtitle and data streams are copied where
the output container can hold them; otherwise audio is encoded to a codec it can hold, text subtitles are
rewritten in its text format, and anything else is left out with a `MediaWarning` naming the stream. A GIF
output gets each frame's own 256-colour palette, and no other streams.

The modules, one job each: `locating` (what an input or output names), `reading`, `colour`, `encoding` (the
encoder, its checks and options), `streams` (audio, subtitles and data beside the video), `writing` (the writer,
the output's record, atomic outputs) and `errors`.
"""

from .colour import Colour
from .encoding import CRF_RANGES, Encoding, check_encoding, codec_for
from .errors import MediaError, MediaWarning, NotAVideo, OutputClosed, StreamLost
from .locating import (IMAGE_SUFFIXES, TEXT_FILE, VIDEO_SUFFIXES, Location, is_source_code, is_video_path, locate,
                       natural)
from .reading import Frame, Reader, Source, iter_frames, read_image
from .streams import AUDIO_MODES
from .writing import Writer, open_atomic, open_output, read_record

__all__ = ["AUDIO_MODES", "CRF_RANGES", "IMAGE_SUFFIXES", "TEXT_FILE", "VIDEO_SUFFIXES", "Colour", "Encoding", "Frame",
           "Location", "MediaError", "MediaWarning", "NotAVideo", "OutputClosed", "Reader", "Source", "StreamLost",
           "Writer", "check_encoding", "codec_for", "is_source_code", "is_video_path", "iter_frames", "locate",
           "natural", "open_atomic", "open_output", "read_image", "read_record"]
