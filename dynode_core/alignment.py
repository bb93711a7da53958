"""Face alignment for video: landmarks -> an oriented crop per frame (the FFHQ recipe), smoothed over time, and
the inverse: pasting new crops back into the frames with a feathered mask.

Landmarks come from MediaPipe's face mesh (the optional extra `faces`: `pip install "dynode[faces]"`), whose
model ships inside the `mediapipe` wheel (0.10.21), so nothing is downloaded.

The FFHQ recipe (Karras et al., ffhq-dataset; used per frame by STIT): from the two eye centres and the two
mouth corners, the crop is a square centred a tenth of the way from the eyes' midpoint to the mouth's, turned
to the eye line, with side max(4 x eye distance, 3.6 x eye-to-mouth distance). A `Framing` says where that
square lands in a generator's own crop (`FRAMINGS["ffhq"]` for FFHQ models, `FRAMINGS["builtin"]` for the
built-in cartoon generator, both calibrated by aligning faces already in that framing; see `Framing`).

Coordinates: pixel (row i, column j) has its centre at (x, y) = (j, i). `transforms[t]` maps crop pixel
coordinates (x, y, 1) to frame pixel coordinates; crops [T, 3, size, size] and frames [T, 3, H, W] in [-1, 1].
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from .video import frames_to_uint8, to_rgb

__all__ = ["AlignedFaces", "Framing", "FRAMINGS", "align_faces", "paste_faces", "detect_faces", "face_transforms",
           "crop_faces", "interpolate_transforms", "smooth_tracks", "faces_available"]

# MediaPipe face-mesh indices: the two eye contours (16 points each) and the outer mouth corners.
_EYE_IMAGE_LEFT = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
_EYE_IMAGE_RIGHT = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
_MOUTH_LEFT, _MOUTH_RIGHT = 61, 291


@dataclass(frozen=True)
class Framing:
    """Where the FFHQ-recipe square of a face lands in a generator's crop, in fractions of the crop side.

    centre: (x, y) of the square's centre, measured from the crop's top-left corner.
    half: half the square's side.
    pivot: None removes the face's roll (FFHQ: faces upright). A point (x, y) keeps it: the crop is not
        turned, the head rolls about this point of the crop (the built-in generator draws tilted heads
        turning about the neck).
    mask: (cx, cy, rx, ry, feather) of the paste-back ellipse in the same units; feather is the fraction of
        the radius over which the mask fades from 1 to 0 (0 outside the ellipse: those pixels are untouched).
    """

    name: str
    centre: tuple[float, float]
    half: float
    pivot: tuple[float, float] | None = None
    mask: tuple[float, float, float, float, float] = (0.5, 0.55, 0.40, 0.46, 0.35)


# Calibrated by aligning faces already in each framing and averaging where their squares land
# (scripts/calibrate_framing.py): FFHQ on the real FFHQ-generator frames in ../shared/data (an exact FFHQ
# recipe square would be centre (0.5, 0.5), half 0.5; MediaPipe's eye centres and mouth corners sit slightly
# differently from dlib's), built-in on rendered faces with no turn or tilt.
FRAMINGS: dict[str, Framing] = {
    "ffhq": Framing("ffhq", centre=(0.496, 0.495), half=0.5, pivot=None, mask=(0.5, 0.54, 0.38, 0.45, 0.35)),
    "builtin": Framing("builtin", centre=(0.499, 0.493), half=0.416, pivot=(0.5, 0.775),
                       mask=(0.5, 0.5, 0.47, 0.49, 0.3)),
}


@dataclass
class AlignedFaces:
    """The result of `align_faces`.

    crops [T, 3, size, size] in [-1, 1] (None for transforms made by `interpolate`), transforms [T, 3, 3]
    float32 (crop pixel -> frame pixel), found [T] bool (False: no face detected, transform filled from the
    neighbours), frame_size (H, W), framing, and tracks [T, 4] the smoothed (cx, cy, angle, half) of each
    frame's FFHQ square in frame pixels.
    """

    crops: torch.Tensor | None
    transforms: torch.Tensor
    found: torch.Tensor
    size: int
    frame_size: tuple[int, int]
    framing: Framing
    tracks: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.transforms)

    def interpolate(self, times, new_times) -> "AlignedFaces":
        """Transforms at `new_times` [N] from these at `times` [T] (see `interpolate_transforms`); crops None."""
        tr = interpolate_transforms(self.transforms, times, new_times, self.size)
        t, n = torch.as_tensor(times, dtype=torch.float64), torch.as_tensor(new_times, dtype=torch.float64)
        nearest = (n[:, None] - t[None]).abs().argmin(1)
        return replace(self, crops=None, transforms=tr, found=self.found[nearest].clone(), tracks=None)

    def select(self, index) -> "AlignedFaces":
        """A subset of the frames (index: slice, list or bool mask)."""
        return replace(self, crops=None if self.crops is None else self.crops[index],
                       transforms=self.transforms[index], found=self.found[index],
                       tracks=None if self.tracks is None else self.tracks[index])


# --- landmarks ---------------------------------------------------------------------------------------------

def faces_available() -> bool:
    """True when the optional `faces` extra (MediaPipe) is installed."""
    try:
        _mediapipe()
    except ImportError:
        return False
    return True


def _mediapipe():
    try:
        import mediapipe as mp
        face_mesh = mp.solutions.face_mesh
    except (ImportError, AttributeError) as e:
        raise ImportError("face alignment needs MediaPipe's face mesh, in the optional extra 'faces': "
                          "pip install \"dynode[faces]\" (from a checkout: pip install -e \".[faces]\"; "
                          f"it installs mediapipe==0.10.21). ({e})") from e
    return face_mesh


def _squares(points: np.ndarray) -> np.ndarray:
    """FFHQ-recipe squares from face-mesh landmarks [N, 468, 2] (frame pixels) -> [N, 4] (cx, cy, angle, half)."""
    eye_l = points[:, list(_EYE_IMAGE_LEFT)].mean(1)
    eye_r = points[:, list(_EYE_IMAGE_RIGHT)].mean(1)
    mouth = (points[:, _MOUTH_LEFT] + points[:, _MOUTH_RIGHT]) / 2
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye, eye_to_mouth = eye_r - eye_l, mouth - eye_avg
    x = eye_to_eye - np.stack([-eye_to_mouth[:, 1], eye_to_mouth[:, 0]], 1)  # eye line, corrected by the mouth
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    half = np.maximum(np.linalg.norm(eye_to_eye, axis=1) * 2.0, np.linalg.norm(eye_to_mouth, axis=1) * 1.8)
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c[:, 0], c[:, 1], np.arctan2(x[:, 1], x[:, 0]), half], 1)


@contextmanager
def _quiet_native_stderr():
    """MediaPipe's C++ side logs set-up chatter straight to file descriptor 2: hide it while it starts."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Detector:
    """MediaPipe face mesh. Every frame is detected afresh (static mode): video mode starts each frame from the
    previous frame's face, which is faster but lost the face or found a wrong one on cuts and on batches of
    unrelated images; the temporal smoothing does what tracking would."""

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5, static: bool = True):
        with _quiet_native_stderr():
            self.mesh = _mediapipe().FaceMesh(static_image_mode=static, max_num_faces=max_faces,
                                              refine_landmarks=False, min_detection_confidence=min_confidence,
                                              min_tracking_confidence=min_confidence)
        self.finder = None  # the full-range face detector, made when a frame needs it (`_search`)
        self.calls = 0

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray | None, int]:
        """uint8 [H, W, 3] -> (the largest face's square [4] or None, number of faces)."""
        h, w = image.shape[:2]
        self.calls += 1
        if self.calls <= 3:  # the models load on the first frames
            with _quiet_native_stderr():
                result = self.mesh.process(np.ascontiguousarray(image))
        else:
            result = self.mesh.process(np.ascontiguousarray(image))
        faces = result.multi_face_landmarks or []
        if not faces:
            return None, 0
        pts = np.array([[(p.x * w, p.y * h) for p in f.landmark] for f in faces], dtype=np.float64)
        sq = _squares(pts)
        return sq[int(np.argmax(sq[:, 3]))], len(faces)

    def boxes(self, image: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:
        """MediaPipe's full-range face detector on uint8 [H, W, 3] -> [(score, (x, y, w, h) in fractions)]."""
        if self.finder is None:
            with _quiet_native_stderr():
                import mediapipe as mp
                self.finder = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                        min_detection_confidence=0.5)
        result = self.finder.process(np.ascontiguousarray(image))
        out = []
        for d in result.detections or []:
            b = d.location_data.relative_bounding_box
            out.append((float(d.score[0]), (b.xmin, b.ymin, b.width, b.height)))
        return out

    def close(self):
        self.mesh.close()
        if self.finder is not None:
            self.finder.close()


_RAW = Framing("raw", centre=(0.5, 0.5), half=0.5)
_REFINE_SIZE = 256


def _mesh_on_crop(det: "_Detector", image: np.ndarray, square: np.ndarray) -> np.ndarray | None:
    """Landmarks on the square (cx, cy, angle, half; frame pixels) cut out upright at a fixed size, mapped
    back to the frame -> a square, or None when the crop shows no face."""
    m = face_transforms(torch.tensor(square[None]), _REFINE_SIZE, _RAW)[0].double()
    frame = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    crop = _crop_one(frame, m, _REFINE_SIZE, _RAW)
    sq, _ = det(frames_to_uint8(crop[None]).numpy()[0])
    if sq is None:
        return None
    sq = sq - np.array([0.5, 0.5, 0.0, 0.0])
    mm = m.numpy()
    centre = mm[:2, :2] @ sq[:2] + mm[:2, 2]
    scale = float(np.sqrt(abs(np.linalg.det(mm[:2, :2]))))
    return np.array([centre[0], centre[1], square[2] + sq[2], sq[3] * scale])


def _refine(det: "_Detector", image: np.ndarray, square: np.ndarray) -> np.ndarray:
    """Landmarks again on the face cut out upright at a fixed size: the detector then sees nearly the same
    picture whatever the face's position, scale and roll in the frame."""
    found = _mesh_on_crop(det, image, square)
    return square if found is None else found


def _search(det: "_Detector", image: np.ndarray, last: np.ndarray | None) -> np.ndarray | None:
    """A face the face mesh misses on the whole frame, mostly one too small for its detector (which sees the
    frame at 192 px): first around the previous frame's face (`last`, a square), then MediaPipe's full-range
    face detector on the frame and on n x n overlapping tiles (n up to 4, tiles of at least ~640 px), best
    boxes first. A box counts only when the face mesh finds a face on its crop too. -> a square (frame
    pixels) or None."""
    if last is not None:
        found = _mesh_on_crop(det, image, last * np.array([1.0, 1.0, 1.0, 1.6]))
        if found is not None:
            return _refine(det, image, found)
    h, w = image.shape[:2]
    for n in range(1, min(4, math.ceil(max(h, w) / 640)) + 1):  # tiles of at least ~640 px
        th, tw = (h, w) if n == 1 else (int(h * 2 / (n + 1)), int(w * 2 / (n + 1)))
        boxes = []
        for y0 in np.linspace(0, h - th, n).round().astype(int):
            for x0 in np.linspace(0, w - tw, n).round().astype(int):
                for score, (bx, by, bw, bh) in det.boxes(image[y0:y0 + th, x0:x0 + tw]):
                    boxes.append((score, x0 + (bx + bw / 2) * tw, y0 + (by + bh / 2) * th, max(bw * tw, bh * th)))
        for _, cx, cy, side in sorted(boxes, reverse=True)[:4]:
            found = _mesh_on_crop(det, image, np.array([cx - 0.5, cy - 0.5, 0.0, side]))
            if found is not None:
                return _refine(det, image, found)
    return None


def detect_faces(frames: Iterable[np.ndarray] | torch.Tensor, progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None, total: int | None = None,
                 refine: bool = True, search: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame FFHQ squares, unsmoothed. frames: a tensor [T, 3, H, W] in [-1, 1] or an iterable of uint8
    [H, W, 3] arrays (e.g. chunks of a video being read). -> (squares [T, 4] float64 (cx, cy, angle, half)
    in frame pixels, NaN where no face; found [T] bool). Several faces in a frame: the largest, with a warning.
    refine: detect again on the upright crop (twice the time; landmarks nearly independent of pose in frame).
    search: where the whole frame shows no face, look for a small one (`_search`: around the previous frame's
    face, then with a full-range detector on the frame and on tiles; about 0.06 s a frame once a face was found,
    up to ~0.5 s for a large frame with no face at all).
    """
    from .decoding import Cancelled

    if isinstance(frames, torch.Tensor):
        clip = frames
        total = len(clip)
        frames = (frames_to_uint8(clip[i:i + 1]).numpy()[0] for i in range(len(clip)))
    det = _Detector()
    det2 = _Detector() if refine else None
    squares, several, last = [], 0, None
    try:
        for image in frames:
            if cancel is not None and cancel():
                raise Cancelled("face detection cancelled")
            sq, n = det(image)
            several += n > 1
            if sq is not None:
                # MediaPipe's x, y are fractions of the width and height (pixel edges); ours are pixel centres.
                sq = sq - np.array([0.5, 0.5, 0.0, 0.0])
                if det2 is not None:
                    sq = _refine(det2, image, sq)
            elif search:
                sq = _search(det2 or det, image, last)
            if sq is not None:
                last = sq
            squares.append(np.full(4, np.nan) if sq is None else sq)
            if progress is not None:
                progress(len(squares), total or len(squares))
    finally:
        det.close()
        if det2 is not None:
            det2.close()
    if several:
        warnings.warn(f"{several} frame(s) show several faces; the largest face of each frame was aligned",
                      stacklevel=2)
    sq = torch.tensor(np.array(squares), dtype=torch.float64).reshape(-1, 4)
    return sq, ~torch.isnan(sq[:, 0])


# --- temporal smoothing ------------------------------------------------------------------------------------

def smooth_tracks(squares: torch.Tensor, found: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """Fill and smooth per-frame squares [T, 4] (cx, cy, angle, half; NaN rows where not found) -> [T, 4].

    Missing frames are filled by linear interpolation between the nearest found frames (held at the ends).
    Then each frame is the value at t of a local linear fit over the neighbouring frames with Gaussian weights
    (found frames weigh 1, filled ones 0.05): a symmetric local-linear fit has no lag on steady motion, so a
    moving face is followed and a still face's landmark noise averages out. Where the motion accelerates more
    than the landmark noise explains, the width shrinks (from `sigma` frames towards 0.2, where a frame is its
    own estimate) so fast turns are not cut short and a batch of unrelated images is not averaged together.
    """
    sq = squares.double().clone()
    t_len = len(sq)
    if not bool(found.any()):
        raise ValueError("no face was found in any frame")
    idx = torch.arange(t_len, dtype=torch.float64)
    good = found.clone()
    sq[:, 2] = torch.from_numpy(np.unwrap(np.nan_to_num(sq[:, 2].numpy())))  # angles continuous over time
    for k in range(4):
        sq[~good, k] = torch.from_numpy(np.interp(idx[~good].numpy(), idx[good].numpy(), sq[good, k].numpy()))
    if t_len < 3 or sigma <= 0:
        return sq
    # Everything in pixels for the adaptivity test: angle and scale changes as a displacement at the square's edge.
    scale = sq[:, 3:4].clamp(min=1.0)
    px = torch.cat([sq[:, :2], sq[:, 2:3] * scale, torch.log(sq[:, 3:4].clamp(min=1e-6)) * scale], 1)
    acc = (px[2:] - 2 * px[1:-1] + px[:-2]).norm(dim=1)
    noise = float(acc[good[1:-1]].median()) if bool(good[1:-1].any()) else float(acc.median())
    # Landmark noise is a fraction of a percent of the face's size: cap the estimate there, so that a batch of
    # unrelated images (every frame a jump) is not mistaken for a noisy still face and averaged together.
    noise = min(noise, 0.01 * float(sq[good, 3].median()))
    broad = _local_linear(acc[:, None], torch.ones(len(acc), dtype=torch.float64), torch.full((len(acc),), 2.0))[:, 0]
    broad = torch.cat([broad[:1], broad, broad[-1:]])
    ratio = broad / max(noise * 2.0, 1e-3)
    sig = (sigma / torch.sqrt(1 + ratio.square())).clamp(min=0.2)
    w = torch.where(good, 1.0, 0.05).double()
    return _local_linear(sq, w, sig)


def _local_linear(y: torch.Tensor, w: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted local linear regression of y [T, K] at every frame, width sigma [T] frames."""
    t_len = len(y)
    idx = torch.arange(t_len, dtype=torch.float64)
    d = idx[None, :] - idx[:, None]  # [T(eval), T(data)]
    k = torch.exp(-0.5 * (d / sigma[:, None]).square()) * w[None, :]
    s0, s1, s2 = k.sum(1), (k * d).sum(1), (k * d * d).sum(1)
    det = s0 * s2 - s1 * s1
    # Weights of the local-linear estimate at d = 0: (s2 - s1 d) / det, falling back to the weighted mean.
    lin = (s2[:, None] - s1[:, None] * d) * k / det.clamp(min=1e-12)[:, None]
    mean = k / s0.clamp(min=1e-12)[:, None]
    coef = torch.where((det > 1e-9 * s0 * s0)[:, None], lin, mean)
    return coef @ y


# --- transforms --------------------------------------------------------------------------------------------

def face_transforms(tracks: torch.Tensor, size: int, framing: Framing | str = "ffhq") -> torch.Tensor:
    """Crop -> frame transforms [T, 3, 3] float32 from squares [T, 4] (cx, cy, angle, half) in frame pixels."""
    fr = _framing(framing)
    tr = tracks.double()
    cx, cy, ang, half = tr.unbind(1)
    s = half / (fr.half * size)  # frame pixels per crop pixel
    c0 = torch.tensor(fr.centre, dtype=torch.float64) * size  # the square's centre in the crop (edge coordinates)
    cos, sin = torch.cos(ang), torch.sin(ang)
    m = torch.zeros(len(tr), 3, 3, dtype=torch.float64)
    m[:, 2, 2] = 1
    if fr.pivot is None:
        a, b = s * cos, s * sin
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = a, -b, b, a
        # (edge coordinates) X = c + sR (p - c0); with pixel centres p = p' + 0.5 and X' = X - 0.5
        off = 0.5 - c0
        m[:, 0, 2] = cx + a * off[0] - b * off[1]
        m[:, 1, 2] = cy + b * off[0] + a * off[1]
    else:
        p0 = torch.tensor(fr.pivot, dtype=torch.float64) * size
        v = c0 - p0  # square centre relative to the pivot, in an upright head
        # where the pivot lands: the head turned by `ang` about it puts the square's centre at (cx, cy)
        qx = cx + 0.5 - s * (cos * v[0] - sin * v[1])
        qy = cy + 0.5 - s * (sin * v[0] + cos * v[1])
        m[:, 0, 0] = m[:, 1, 1] = s
        m[:, 0, 2] = qx + s * (0.5 - p0[0]) - 0.5
        m[:, 1, 2] = qy + s * (0.5 - p0[1]) - 0.5
    return m.float()


def _similarity_params(m: torch.Tensor) -> torch.Tensor:
    """Nearest similarity of each linear part [T, 3, 3] -> [T, 2] (log scale, angle)."""
    a, b = (m[:, 0, 0] + m[:, 1, 1]) / 2, (m[:, 1, 0] - m[:, 0, 1]) / 2
    return torch.stack([torch.log(torch.hypot(a, b).clamp(min=1e-12)), torch.atan2(b, a)], 1)


def _rotation(scale: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    c, s = scale * torch.cos(angle), scale * torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def interpolate_transforms(transforms: torch.Tensor, times, new_times, size: int | None = None) -> torch.Tensor:
    """Transforms [T, 3, 3] at `times` [T] -> [N, 3, 3] at `new_times` [N] (held outside the range).

    Between two frames the scale interpolates geometrically, the angle along the shorter arc and the frame
    position of the crop's middle (of a crop of side `size`; the crop origin when None) linearly, so a face
    that turns while it moves sweeps smoothly instead of shearing, as averaging the matrices would.
    Whatever is not a similarity in the transforms is blended linearly.
    """
    m = torch.as_tensor(transforms).double()
    t = torch.as_tensor(times, dtype=torch.float64).flatten()
    q = torch.as_tensor(new_times, dtype=torch.float64).flatten()
    if m.ndim != 3 or m.shape[1:] != (3, 3):
        raise ValueError(f"transforms must have shape [T, 3, 3], got {list(m.shape)}")
    if len(t) != len(m):
        raise ValueError(f"times has {len(t)} entries for {len(m)} transforms")
    if len(t) == 1:
        return m.expand(len(q), 3, 3).float().clone()
    order = torch.argsort(t)
    t, m = t[order], m[order]
    right = torch.searchsorted(t, q).clamp(1, len(t) - 1)
    left = right - 1
    a = ((q - t[left]) / (t[right] - t[left])).clamp(0, 1)
    p = _similarity_params(m)
    d_ang = torch.remainder(p[right, 1] - p[left, 1] + math.pi, 2 * math.pi) - math.pi
    sim = _rotation(torch.exp(torch.lerp(p[left, 0], p[right, 0], a)), p[left, 1] + a * d_ang)
    resid = m[:, :2, :2] - _rotation(torch.exp(p[:, 0]), p[:, 1])
    lin = sim + torch.lerp(resid[left], resid[right], a[:, None, None])
    mid = torch.full((2,), 0.0 if size is None else (size - 1) / 2, dtype=torch.float64)
    pos = lambda mm: mm[:, :2, :2] @ mid + mm[:, :2, 2]  # noqa: E731  frame position of the crop's middle
    centre = torch.lerp(pos(m[left]), pos(m[right]), a[:, None])
    out = torch.zeros(len(q), 3, 3, dtype=torch.float64)
    out[:, 2, 2] = 1
    out[:, :2, :2] = lin
    out[:, :2, 2] = centre - lin @ mid
    return out.float()


def _framing(framing) -> Framing:
    if isinstance(framing, Framing):
        return framing
    if hasattr(framing, "resolution") and hasattr(framing, "w_dim"):  # a generator: the framing it was trained on
        from .video_pipeline import framing_for
        return FRAMINGS[framing_for(framing)]
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {sorted(FRAMINGS)}, a Framing or a generator, got {framing!r}")
    return FRAMINGS[framing]


# --- warping -----------------------------------------------------------------------------------------------

def _pixel_grid(m: torch.Tensor, h: int, w: int, size_h: int, size_w: int, x0: int = 0, y0: int = 0) -> torch.Tensor:
    """grid_sample grid [1, size_h, size_w, 2] sampling an image [h, w] at m @ (x + x0, y + y0, 1)."""
    ys, xs = torch.meshgrid(torch.arange(size_h, dtype=torch.float64) + y0,
                            torch.arange(size_w, dtype=torch.float64) + x0, indexing="ij")
    X = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    Y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return torch.stack([(X + 0.5) / w * 2 - 1, (Y + 0.5) / h * 2 - 1], -1)[None]


def _scale(m: torch.Tensor) -> float:
    return float(abs(torch.det(m[:2, :2].double())) ** 0.5)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, 0, 0), mode="reflect" if x.shape[-1] > r else "replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect" if x.shape[-2] > r else "replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _crop_one(frame: torch.Tensor, m: torch.Tensor, size: int, framing: Framing) -> torch.Tensor:
    """frame [3, H, W], transform [3, 3] (crop -> frame) -> crop [3, size, size]."""
    h, w = frame.shape[-2:]
    m = m.double()
    corners = m[:2, :2] @ torch.tensor([[0, size - 1, 0, size - 1], [0, 0, size - 1, size - 1]], dtype=torch.float64)
    corners = corners + m[:2, 2:3]
    margin = 2 + _scale(m)
    x_lo = int(max(0, math.floor(float(corners[0].min()) - margin)))
    x_hi = int(min(w, math.ceil(float(corners[0].max()) + margin) + 1))
    y_lo = int(max(0, math.floor(float(corners[1].min()) - margin)))
    y_hi = int(min(h, math.ceil(float(corners[1].max()) + margin) + 1))
    if x_hi <= x_lo or y_hi <= y_lo:  # the crop lies wholly outside the frame: sample the nearest edge strip
        x_lo, x_hi = min(max(0, x_lo), w - 1), max(min(w, x_hi), 1)
        x_lo, x_hi = min(x_lo, x_hi - 1), max(x_hi, x_lo + 1)
        y_lo, y_hi = min(max(0, y_lo), h - 1), max(min(h, y_hi), 1)
        y_lo, y_hi = min(y_lo, y_hi - 1), max(y_hi, y_lo + 1)
    region = frame[:, y_lo:y_hi, x_lo:x_hi].float()[None]
    shift = torch.tensor([[1, 0, -x_lo], [0, 1, -y_lo], [0, 0, 1]], dtype=torch.float64)
    local = shift @ m
    s = _scale(m)
    # Reflection at the region's edges is right only where they are the frame's edges; the region covers every
    # point sampled inside the frame (margin), so that holds.
    if s > 1.25:  # downscaling: shrink the region first (antialiased) so every crop pixel averages its footprint
        rh, rw = region.shape[-2:]
        nh, nw = max(1, round(rh / s)), max(1, round(rw / s))
        region = F.interpolate(region, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        sx, sy = nw / rw, nh / rh
        local = torch.tensor([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], dtype=torch.float64) @ local
    rh, rw = region.shape[-2:]
    grid = _pixel_grid(local, rh, rw, size, size).float()
    crop = F.grid_sample(region, grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
    # Outside the frame: reflected, then blurred and faded towards the median colour (the FFHQ recipe's padding).
    g = _pixel_grid(m, 1, 1, size, size)[0]  # frame coordinates (scaled: (X + 0.5) * 2 - 1) ...
    X = (g[..., 0] + 1) / 2 - 0.5
    Y = (g[..., 1] + 1) / 2 - 0.5
    outside = torch.stack([-0.5 - X, X - (w - 0.5), -0.5 - Y, Y - (h - 0.5)]).amax(0)  # frame px, > 0 outside
    if bool((outside > 0).any()):
        inside = outside <= 0
        q = 2 * size * framing.half * s  # the FFHQ square's side in frame pixels
        width = max(float(outside.max()), 0.05 * q)
        mask = (outside / width).float()
        blur = _gaussian_blur(crop[None], max(0.5, 0.02 * q / s))[0]
        crop = crop + (blur - crop) * (mask * 3 + 1).clamp(0, 1)
        med = crop[:, inside].median(dim=1).values if bool(inside.any()) else crop.flatten(1).median(dim=1).values
        crop = crop + (med[:, None, None] - crop) * mask.clamp(0, 1)
    return crop


def crop_faces(frames: torch.Tensor, transforms: torch.Tensor, size: int, framing: Framing | str = "ffhq") -> torch.Tensor:
    """Warp frames [T, 3, H, W] by transforms [T, 3, 3] (crop -> frame) into crops [T, 3, size, size]."""
    fr = _framing(framing)
    frames = to_rgb(frames)
    return torch.stack([_crop_one(frames[i], transforms[i], size, fr) for i in range(len(frames))]).clamp(-1, 1)


# --- the public pair ---------------------------------------------------------------------------------------

def align_faces(frames: torch.Tensor, size: int = 256, framing: Framing | str = "ffhq", smoothing: float = 3.0,
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> AlignedFaces:
    """Find the face in every frame and cut out aligned crops. frames [T, 3, H, W] in [-1, 1] -> `AlignedFaces`
    with crops [T, 3, size, size], transforms [T, 3, 3] (crop pixel -> frame pixel) and found [T].

    framing: "ffhq" (FFHQ StyleGAN2 models; the default), "builtin" (the built-in 64-px generator), a
    `Framing`, or a generator (its own framing: "builtin" for the built-in one, "ffhq" otherwise).
    smoothing: width in frames of the temporal smoothing (0: none). Frames without a face are flagged in
    `found` and get their neighbours' interpolated transform; a clip without any face raises ValueError.
    Needs the `faces` extra (MediaPipe).
    """
    fr = _framing(framing)
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] not in (1, 3, 4):
        got = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a tensor [T, 3, H, W] in [-1, 1], got {got}")
    if len(frames) == 0:
        raise ValueError("frames is empty (T = 0)")
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 4096:
        raise ValueError(f"size must be an integer in [8, 4096], got {size!r}")
    frames = to_rgb(frames.detach().cpu().float())
    total = 2 * len(frames)

    def det_progress(done, _):
        if progress is not None:
            progress(done, total)

    squares, found = detect_faces(frames, progress=det_progress, cancel=cancel)
    if not bool(found.any()):
        raise ValueError(f"no face was found in any of the {len(frames)} frame(s)")
    tracks = smooth_tracks(squares, found, sigma=smoothing)
    transforms = face_transforms(tracks, size, fr)
    crops = []
    from .decoding import Cancelled
    for i in range(len(frames)):
        if cancel is not None and cancel():
            raise Cancelled("face alignment cancelled")
        crops.append(_crop_one(frames[i], transforms[i], size, fr))
        if progress is not None:
            progress(len(frames) + i + 1, total)
    return AlignedFaces(torch.stack(crops).clamp(-1, 1), transforms, found, size, tuple(frames.shape[-2:]), fr,
                        tracks.float())


def _mask(u: torch.Tensor, v: torch.Tensor, framing: Framing) -> torch.Tensor:
    cx, cy, rx, ry, feather = framing.mask
    r = torch.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    m = ((1 - r) / max(feather, 1e-6)).clamp(0, 1)
    return m * m * (3 - 2 * m)  # smoothstep: no visible edge where the fade starts


def paste_one(frame: torch.Tensor, crop: torch.Tensor, m: torch.Tensor, size: int, framing: Framing,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Paste crop [3, S, S] into frame [3, H, W] at transform m (crop pixels of a `size` crop -> frame)."""
    h, w = frame.shape[-2:]
    s_crop = crop.shape[-1]
    m = m.double()
    # crop pixels of side S -> crop pixels of side `size`
    k = size / s_crop
    m_s = m @ torch.tensor([[k, 0, 0.5 * k - 0.5], [0, k, 0.5 * k - 0.5], [0, 0, 1]], dtype=torch.float64)
    cx, cy, rx, ry, _ = framing.mask
    # bounding box of the mask ellipse in the frame (crop corners of its bounding square, a safe superset)
    us = torch.tensor([cx - rx, cx + rx, cx - rx, cx + rx], dtype=torch.float64) * size - 0.5
    vs = torch.tensor([cy - ry, cy - ry, cy + ry, cy + ry], dtype=torch.float64) * size - 0.5
    if mask is not None:
        us = torch.tensor([0, size, 0, size], dtype=torch.float64) - 0.5
        vs = torch.tensor([0, 0, size, size], dtype=torch.float64) - 0.5
    X = m[0, 0] * us + m[0, 1] * vs + m[0, 2]
    Y = m[1, 0] * us + m[1, 1] * vs + m[1, 2]
    x_lo, x_hi = max(0, int(math.floor(float(X.min()))) - 1), min(w, int(math.ceil(float(X.max()))) + 2)
    y_lo, y_hi = max(0, int(math.floor(float(Y.min()))) - 1), min(h, int(math.ceil(float(Y.max()))) + 2)
    if x_hi <= x_lo or y_hi <= y_lo:
        return frame
    inv = torch.linalg.inv(m_s)  # frame -> crop (side S)
    src = crop.float()[None]
    s = 1 / _scale(m_s)  # crop pixels per frame pixel
    if s > 1.25:  # the crop is larger than its footprint: shrink it first (antialiased)
        n = max(2, round(s_crop / s))
        src = F.interpolate(src, size=(n, n), mode="bilinear", align_corners=False, antialias=True)
        r = n / s_crop
        inv = torch.tensor([[r, 0, 0.5 * r - 0.5], [0, r, 0.5 * r - 0.5], [0, 0, 1]], dtype=torch.float64) @ inv
    sh, sw = src.shape[-2:]
    grid = _pixel_grid(inv, sh, sw, y_hi - y_lo, x_hi - x_lo, x_lo, y_lo)
    patch = F.grid_sample(src, grid.float(), mode="bilinear", padding_mode="border", align_corners=False)[0]
    g = grid[0].double()
    # normalised crop coordinates in [0, 1] (edges) of every frame pixel of the box
    u, v = (g[..., 0] + 1) / 2, (g[..., 1] + 1) / 2
    if mask is None:
        alpha = _mask(u, v, framing).float()
    else:
        mk = mask.float().reshape(1, 1, *mask.shape[-2:])
        alpha = F.grid_sample(mk, grid.float(), mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]
        alpha = alpha * ((u > 0) & (u < 1) & (v > 0) & (v < 1)).float()
    out = frame.clone()
    box = out[:, y_lo:y_hi, x_lo:x_hi]
    blend = box.float() * (1 - alpha) + patch * alpha
    out[:, y_lo:y_hi, x_lo:x_hi] = torch.where(alpha > 0, blend.to(box.dtype), box)
    return out


def paste_faces(frames: torch.Tensor, crops: torch.Tensor, faces: AlignedFaces, mask: torch.Tensor | None = None,
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """Put crops back into the frames they were aligned from. frames [T, 3, H, W], crops [T, 3, S, S] (any S),
    faces from `align_faces` (or `AlignedFaces.interpolate`) -> frames [T, 3, H, W].

    Each crop goes through the inverse of its transform and is blended in with a feathered ellipse around
    the face (the framing's `mask`; or `mask` [S, S] / [T, 1, S, S] in [0, 1] given in crop pixels). Pixels
    outside the mask are returned unchanged, bit for bit.
    """
    from .decoding import Cancelled

    if not isinstance(faces, AlignedFaces):
        raise TypeError(f"faces must be the AlignedFaces that align_faces returned, got {type(faces).__name__}")
    if frames.ndim != 4 or crops.ndim != 4 or crops.shape[-1] != crops.shape[-2]:
        raise ValueError(f"frames must be [T, 3, H, W] and crops [T, 3, S, S], got {list(frames.shape)} and "
                         f"{list(crops.shape)}")
    if not (len(frames) == len(crops) == len(faces)):
        raise ValueError(f"frames ({len(frames)}), crops ({len(crops)}) and faces ({len(faces)}) must have the "
                         f"same number of frames")
    crops = to_rgb(crops.detach().cpu())
    out = []
    for i in range(len(frames)):
        if cancel is not None and cancel():
            raise Cancelled("paste cancelled")
        mk = None if mask is None else (mask if mask.ndim == 2 else mask[i])
        out.append(paste_one(frames[i].detach().cpu(), crops[i], faces.transforms[i], faces.size, faces.framing, mk))
        if progress is not None:
            progress(i + 1, len(frames))
    return torch.stack(out)
