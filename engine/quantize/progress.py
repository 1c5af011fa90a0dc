"""What a long model conversion reports as it goes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """What a progress callback is told after each batch of a tensor and after each tensor."""

    tensors_done: int
    n_tensors: int
    bytes_done: int  # bytes of input tensor data read so far
    bytes_total: int
    tensor: str
    seconds: float

    @property
    def mb_per_second(self) -> float:
        return self.bytes_done / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.bytes_done <= 0 or self.seconds <= 0:
            return None
        return (self.bytes_total - self.bytes_done) * self.seconds / self.bytes_done
