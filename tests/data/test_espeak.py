import numpy as np
import pytest

from engine.data.espeak import EspeakError, LibrarySynthesizer, ProgramSynthesizer


@pytest.mark.parametrize("make", [LibrarySynthesizer, ProgramSynthesizer])
def test_both_synthesizers_speak_mandarin_and_english(make):
    synthesizer = make()
    for text, voice in [("我们今天处理数据", "cmn-latn-pinyin+m1"), ("machine learning", "en+f2")]:
        samples = synthesizer.speak(text, voice, 180, 50)
        assert samples.dtype == np.int16
        seconds = samples.size / synthesizer.sample_rate
        assert 0.4 < seconds < 5 and np.abs(samples).max() > 1000


def test_faster_speech_is_shorter():
    synthesizer = LibrarySynthesizer()
    slow = synthesizer.speak("we need the data today", "en+m3", 120, 50)
    fast = synthesizer.speak("we need the data today", "en+m3", 240, 50)
    assert fast.size < 0.75 * slow.size


def test_unknown_voice_is_named():
    with pytest.raises(EspeakError, match="no-such-voice"):
        LibrarySynthesizer().speak("hello", "no-such-voice", 150, 50)
