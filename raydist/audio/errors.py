"""Typed errors for audio input. Each names the stage it belongs to, which the pipeline writes
into its error rows, and a message that names the bad value."""


class AudioError(ValueError):
    stage = "decode"


class ReadError(AudioError):
    """The bytes could not be fetched (missing file, permission, network)."""

    stage = "read"


class DecodeError(AudioError):
    """The bytes are not audio soundfile can decode (corrupt, unsupported, not audio)."""

    stage = "decode"


class EmptyAudioError(AudioError):
    """The file decodes to zero samples."""

    stage = "validate"


class NonFiniteAudioError(AudioError):
    """The samples hold NaN or infinity."""

    stage = "validate"


class TooShortError(AudioError):
    """The clip is shorter than one latent frame."""

    stage = "validate"
