"""espeak-ng speech synthesis for the demo corpus, in-process through libespeak-ng.

There is no Python binding for espeak-ng among our dependencies, and starting the
``espeak-ng`` program once per utterance costs more than the synthesis itself (it reloads
its dictionaries every time), so the library is called through ctypes. The program is the
fallback where the shared library cannot be found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import subprocess

import numpy as np
import soundfile

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAMETER_RATE = 1
PARAMETER_PITCH = 3
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng is missing or refused a voice or a text."""


class LibrarySynthesizer:
    """One libespeak-ng instance in this process; ``speak`` returns int16 samples."""

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as error:
            raise EspeakError(f"cannot load libespeak-ng: {error}") from error
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
        if self.sample_rate <= 0:
            raise EspeakError("espeak_Initialize failed (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._callback = SYNTH_CALLBACK(self._collect)  # kept referenced: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(PARAMETER_RATE, rate, 0)
        self.lib.espeak_SetParameter(PARAMETER_PITCH, pitch, 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        if self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None) != 0:
            raise EspeakError(f"espeak-ng failed on {text!r}")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)


class ProgramSynthesizer:
    """The ``espeak-ng`` command, one process per call."""

    sample_rate = 22050

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        command = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text]
        try:
            result = subprocess.run(command, capture_output=True, check=True)
        except FileNotFoundError as error:
            raise EspeakError("espeak-ng is not installed (Debian: apt-get install espeak-ng)") from error
        except subprocess.CalledProcessError as error:
            raise EspeakError(f"espeak-ng failed on {text!r}: {error.stderr.decode(errors='replace')}") from error
        samples, self.sample_rate = soundfile.read(io.BytesIO(result.stdout), dtype="int16")
        return samples


def make_synthesizer():
    """The in-process synthesiser, or the program when the library cannot be loaded."""
    try:
        return LibrarySynthesizer()
    except EspeakError:
        return ProgramSynthesizer()
