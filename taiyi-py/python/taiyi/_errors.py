"""Exception classes raised by the native module (Rust errors, with the Rust message)."""


class TaiyiError(Exception):
    """Base class of every error raised by taiyi."""


class TaiyiValueError(TaiyiError, ValueError):
    """Bad input: an empty list, an unknown name, an undecodable image, mismatched sizes."""


class TaiyiFileNotFoundError(TaiyiError, FileNotFoundError):
    """A model file, vocabulary or image path that does not exist."""
