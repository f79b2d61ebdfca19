"""Conference mixing: each participant hears the sum of all the others (an N-1 mix).

One int32 sum of all frames, then each participant's own frame subtracted from it:
2N additions per sample instead of N(N-1), and no int16 overflow before the final
saturation. Frames are int16 arrays of equal length (one packet interval each).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def _stack(frames: Sequence[npt.NDArray[np.int16]]) -> npt.NDArray[np.int32]:
    lengths = {len(frame) for frame in frames}
    if len(lengths) > 1:
        raise ValueError(f"frames to mix differ in length: {sorted(lengths)}")
    return np.stack(frames, dtype=np.int32)


def mix(frames: Sequence[npt.NDArray[np.int16]]) -> list[npt.NDArray[np.int16]]:
    """For each participant, in order, the sum of everyone else's frame, saturated to int16."""
    if not frames:
        return []
    stacked = _stack(frames)
    total = stacked.sum(axis=0)
    np.subtract(total, stacked, out=stacked)
    return list(np.clip(stacked, -32768, 32767).astype(np.int16))


def mix_all(frames: Sequence[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    """The sum of all frames, saturated to int16: what a listener-only participant or a recorder gets."""
    if not frames:
        raise ValueError("no frames to mix")
    return np.clip(_stack(frames).sum(axis=0), -32768, 32767).astype(np.int16)


LIMIT = 29000.0
"""Peak the limiter keeps a conference mix under (about -1 dBFS): no clipping."""
RELEASE = 1.06
"""The limiter's gain comes back towards 1 by this factor a frame (0.5 dB every 20 ms)."""


def conference_mix(frames: npt.NDArray[np.float32], gain: float
                   ) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16], float]:
    """The mix of a conference's talkers (`frames`: one row of samples per talker, already
    levelled) for its listeners, and each talker's own N-1 mix, with a limiter.

    Returns (what every listener hears, one row per talker of what that talker hears, the
    limiter's gain for the next frame). The gain drops at once to keep the loudest output
    under LIMIT and comes back slowly (RELEASE), so that several loud talkers at once get
    quieter rather than clipped and distorted.
    """
    total = frames.sum(axis=0, dtype=np.float32)
    own = total - frames
    peak = float(max(np.abs(total).max(initial=0.0), np.abs(own).max(initial=0.0)))
    gain = min(1.0, gain * RELEASE)
    if peak * gain > LIMIT:
        gain = LIMIT / peak
    if gain != 1.0:
        total *= gain
        own *= gain
    return (np.clip(total, -32768, 32767).astype(np.int16), np.clip(own, -32768, 32767).astype(np.int16),
            gain)
