"""Dataset readers: the real coding sheets (realdata), and small frame folders and sheets made here."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_mer.errors import UserError
from realtime_mer.train.datasets import DatasetError, open_dataset, parse_spec

CASME2_SHEET = "labels/CASME2-coding-20190701.xlsx"
SAMM_SHEET = "labels/SAMM_Micro_FACS_Codes_v2.xlsx"
MEGC_GT = "labels/combined_3class_gt.csv"
CASME3_CSV = "labels/casme3_partA_labels.csv"


def _frames(folder: Path, numbers, name=lambda n: f"img{n}.jpg") -> None:
    """Tiny 8x8 images numbered ``numbers`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        img = np.full((8, 8, 3), n % 256, np.uint8)
        assert cv2.imwrite(str(folder / name(n)), img)


def _xlsx(path: Path, rows) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


CASME2_HEADER = (
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
)
CASME2_ROWS = (
    ("01", "EP02_01f", None, 46, 59, 86, None, 12, "happiness"),
    ("01", "EP19_05f", None, 396, 416, 446, None, "4+7+L10", "disgust"),
    ("04", "EP12_01f", None, 261, "/", 321, None, "4+7+L10", "disgust"),
    ("02", "EP03_02", None, 131, 139, 161, None, 18, "others"),
)


@pytest.fixture
def casme2_root(tmp_path: Path) -> Path:
    """A CASME II-shaped root: the sheet in it (spacer columns, a "/" apex) and frames for every row."""
    root = tmp_path / "CASME2"
    (root / "CASME2_RAW_selected").mkdir(parents=True)
    _xlsx(root / "notes.xlsx", [("unrelated",)])  # found by name, not by being the only workbook
    _xlsx(root / "CASME2-coding-20190701.xlsx", [CASME2_HEADER, *CASME2_ROWS])
    for subj, name, _, on, apex, off, *_ in CASME2_ROWS:
        nums = {on, off, (on + off) // 2} | ({apex} if isinstance(apex, int) else set())
        _frames(root / "CASME2_RAW_selected" / f"sub{subj}" / name, sorted(nums))
    return root


# --- CASME II, made here ---------------------------------------------------------------------


def test_casme2_reader_resolves_frames(casme2_root: Path):
    ds = open_dataset(f"casme2:{casme2_root}")
    assert isinstance(ds.samples[0].frames[0], Path)
    assert len(ds) == 4 and ds.classes == ("happiness", "disgust", "others")
    assert ds.subjects == ("casme2/sub01", "casme2/sub02", "casme2/sub04")
    s = ds.samples[0]
    assert (s.subject, s.sample_id, s.onset, s.apex, s.offset, s.aus, s.fps) == (
        "sub01",
        "EP02_01f",
        46,
        59,
        86,
        "12",
        200.0,
    )
    assert s.onset_path.name == "img46.jpg" and s.apex_path.name == "img59.jpg" and s.offset_path.name == "img86.jpg"
    assert s.onset_path.parent == casme2_root / "CASME2_RAW_selected" / "sub01" / "EP02_01f"
    assert [p.name for p in s.clip()] == ["img46.jpg", "img59.jpg", "img66.jpg", "img86.jpg"]
    slash = ds.samples[2]
    assert slash.apex is None and slash.apex_or_middle() == 291 and slash.apex_path.name == "img291.jpg"
    with pytest.raises(DatasetError, match="frame 47 is not in"):
        s.frame_path(47)


def test_casme2_megc3_mapping_drops_others(casme2_root: Path):
    ds = open_dataset(f"casme2:{casme2_root}", classes="megc3")
    assert ds.classes == ("negative", "positive", "surprise")
    assert [(s.sample_id, s.label) for s in ds.samples] == [("EP02_01f", 1), ("EP19_05f", 0), ("EP12_01f", 0)]
    assert ds.excluded == ("casme2/sub02/EP03_02: 'others' has no megc3 class",)


def test_casme2_missing_folder_is_named(casme2_root: Path):
    folder = casme2_root / "CASME2_RAW_selected" / "sub02" / "EP03_02"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    with pytest.raises(DatasetError, match=f"frame folder {folder} does not exist") as e:
        open_dataset(f"casme2:{casme2_root}")
    assert isinstance(e.value, UserError)
    ds = open_dataset(f"casme2:{casme2_root}?missing=skip")
    assert len(ds) == 3 and ds.excluded[0].startswith("casme2/sub02/EP03_02: frame folder")


def test_casme2_missing_frame_and_column(casme2_root: Path, tmp_path: Path):
    (casme2_root / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img59.jpg").unlink()
    with pytest.raises(DatasetError, match="sub01/EP02_01f: apex frame 59 is not in"):
        open_dataset(f"casme2:{casme2_root}")
    sheet = _xlsx(
        tmp_path / "bad.xlsx", [tuple(c for c in CASME2_HEADER if c != "ApexFrame"), ("01", "EP02_01f", None, 46, 86)]
    )
    with pytest.raises(DatasetError, match="lacks column\\(s\\) ApexFrame"):
        open_dataset(f"casme2:{casme2_root}?sheet={sheet}")


def test_casme2_no_sheet_and_no_frames(tmp_path: Path):
    (tmp_path / "sub01").mkdir()
    with pytest.raises(DatasetError, match="no CASME II coding sheet .* give it with casme2:"):
        open_dataset(f"casme2:{tmp_path}")
    with pytest.raises(DatasetError, match="neither the dataset folder nor its coding sheet"):
        open_dataset(f"casme2:{tmp_path / 'nowhere'}")
    sheet = _xlsx(tmp_path / "CASME2-coding-x.xlsx", [CASME2_HEADER, CASME2_ROWS[0]])
    (tmp_path / "sub01").rmdir()
    with pytest.raises(DatasetError, match="no subject folders found under .*expected ROOT/subXX/EPxx_xxf"):
        open_dataset(f"casme2:{tmp_path}?sheet={sheet}")
    labels_only = open_dataset(f"casme2:{sheet}")
    assert labels_only.samples[0].frames == ()
    with pytest.raises(DatasetError, match="no frames were resolved"):
        _ = labels_only.samples[0].onset_path


# --- SAMM, SMIC, CAS(ME)^3, flow images, made here ----------------------------------------------


def test_samm_header_below_preamble(tmp_path: Path):
    header = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
              "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes")  # fmt: skip
    preamble = [("SAMM Dataset - Master FACS Codes",), (), ("Symbol Key:",), ('"/" = or',), ()]
    rows = [(6, "006_1_2", 1, 5562, 5588, 5632, 71, "Micro - 1/2", "4+7", "Anger", 3, None),
            ("007", "007_4_2", 4, 100, 110, 120, 21, "Micro - 1/2", "12", "Other", 7, "x")]  # fmt: skip
    root = tmp_path / "SAMM"
    _xlsx(root.parent / "SAMM_Micro_FACS_Codes_v2.xlsx", [*preamble, header, *rows])
    _frames(root / "006" / "006_1_2", range(5562, 5633), name=lambda n: f"006_{n:05d}.jpg")
    _frames(root / "007" / "007_4_2", range(100, 121), name=lambda n: f"007_{n:05d}.jpg")
    ds = open_dataset(f"samm:{root}?sheet={tmp_path / 'SAMM_Micro_FACS_Codes_v2.xlsx'}")
    s = ds.samples[0]
    assert (s.subject, s.sample_id, s.label_name, s.extra["row"]) == ("006", "006_1_2", "anger", 7)
    assert s.apex_path.name == "006_05588.jpg" and len(s.clip()) == 71
    megc = open_dataset(f"samm:{root}?sheet={tmp_path / 'SAMM_Micro_FACS_Codes_v2.xlsx'}&classes=megc3")
    assert [x.label_name for x in megc.samples] == ["negative"] and len(megc.excluded) == 1


def test_smic_folder_labels(tmp_path: Path):
    hs = tmp_path / "SMIC" / "HS"
    _frames(hs / "s1" / "micro" / "negative" / "s1_ne_01", range(46360, 46371), name=lambda n: f"reg_image{n:06d}.bmp")
    _frames(hs / "s1" / "micro" / "positive" / "s1_po_02", range(10, 16), name=lambda n: f"reg_image{n:06d}.bmp")
    _frames(hs / "s12" / "micro" / "surprise" / "s12_sur_01", range(1, 4), name=lambda n: f"image{n}.bmp")
    _frames(hs / "s12" / "non_micro" / "s12_x", range(1, 3))
    ds = open_dataset(f"smic:{tmp_path / 'SMIC'}")
    assert [(s.subject, s.sample_id, s.label_name) for s in ds.samples] == [
        ("s01", "s01_ne_01", "negative"), ("s01", "s01_po_02", "positive"), ("s12", "s12_sur_01", "surprise"),
    ]  # fmt: skip
    s = ds.samples[0]
    assert (s.onset, s.apex, s.offset, s.fps, s.extra["folder"]) == (46360, None, 46370, 100.0, "s1_ne_01")
    assert s.apex_or_middle() == 46365 and s.apex_path.name == "reg_image046365.bmp"
    with pytest.raises(DatasetError, match="SMIC modality must be one of HS, VIS, NIR"):
        open_dataset(f"smic:{tmp_path / 'SMIC'}?modality=IR")
    (hs / "s1" / "micro" / "negative" / "s1_ne_01" / "reg_image046360.bmp").rename(hs / "notes.txt")
    for f in (hs / "s1" / "micro" / "negative" / "s1_ne_01").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="s1_ne_01 holds no numbered images"):
        open_dataset(f"smic:{hs}")


def test_casme3_frames_and_megc3(tmp_path: Path):
    root = tmp_path / "part_A"
    with open(root.parent / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"])
        w.writerow(["spNO.1", "j", 28, 33, 49, 24, "VII", "happy"])
        w.writerow(["spNO.1", "j", 102, 105, 113, "26+25", "II", "surprise"])
        w.writerow(["spNO.2", "a", 5, 7, 9, 4, "III", "fear"])
    _frames(root / "data" / "spNO.1" / "j" / "color", range(20, 120), name=lambda n: f"{n}.jpg")
    _frames(root / "data" / "spNO.2" / "a" / "color", range(1, 12), name=lambda n: f"{n}.jpg")
    ds = open_dataset(f"casme3:{root}?labels={root.parent / 'labels.csv'}&classes=megc3")
    assert [(s.sample_id, s.label_name, s.extra["video"]) for s in ds.samples] == [
        ("j_28", "positive", "j"), ("j_102", "surprise", "j"), ("a_5", "negative", "a"),
    ]  # fmt: skip
    assert ds.samples[1].apex_path == root / "data" / "spNO.1" / "j" / "color" / "105.jpg"
    assert ds.samples[0].fps == 30.0


def test_flowimages(tmp_path: Path):
    for name in ("casme2_sub01_EP02_01f", "smic_s01_s01_ne_01", "samm_006_006_1_2"):
        assert cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((60, 60, 3), np.uint8))
    rows = [("subject", "sample", "label", "database"), ("sub01", "casme2_sub01_EP02_01f", 1, "casme2"),
            ("s01", "smic_s01_s01_ne_01", 0, "smic"), ("006", "samm_006_006_1_2", 2, "SAMM")]  # fmt: skip
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    ds = open_dataset(f"flowimages:{tmp_path}")
    assert ds.classes == ("negative", "positive", "surprise")
    assert [(s.dataset, s.label_name, s.flow.name) for s in ds.samples] == [
        ("casme2", "positive", "casme2_sub01_EP02_01f.png"), ("smic", "negative", "smic_s01_s01_ne_01.png"),
        ("samm", "surprise", "samm_006_006_1_2.png"),
    ]  # fmt: skip
    named = open_dataset(f"flowimages:{tmp_path}?names=a,b,c")
    assert named.classes == ("a", "b", "c") and named.samples[0].label_name == "b"
    (tmp_path / "samm_006_006_1_2.png").unlink()
    with pytest.raises(DatasetError, match="no image samm_006_006_1_2.png/.jpg under"):
        open_dataset(f"flowimages:{tmp_path}")
    assert len(open_dataset(f"flowimages:{tmp_path}", missing="skip")) == 2
    with open(tmp_path / "labels.csv", "a", newline="") as fh:
        csv.writer(fh).writerow(("007", "x", 5, "samm"))
    with pytest.raises(DatasetError, match="integer labels \\[0, 1, 2, 5\\] need class names"):
        open_dataset(f"flowimages:{tmp_path}")


def test_synth_reader_on_a_generated_set(tmp_path: Path, face_model: Path):
    from realtime_mer.synth import EventConfig, SynthConfig, write_dataset

    cfg = SynthConfig(size=(128, 96), subjects=2, clip_seconds=(1.5, 2.0), events=EventConfig(neutral_fraction=0.0))
    write_dataset(tmp_path / "syn", clips=3, fps=30.0, seed=3, config=cfg, frames=True, model_path=face_model)
    ds = open_dataset(f"synth:{tmp_path / 'syn'}")
    assert len(ds) >= 3 and ds.datasets == ("synth",)
    for s in ds.samples:
        assert s.video.is_file() and s.fps == 30.0 and s.onset < s.apex < s.offset
        assert s.onset_path.name == f"img{s.onset + 1}.jpg"  # the writer numbers files frame + 1
        assert cv2.imread(str(s.apex_path)).shape == (96, 128, 3)
    with pytest.raises(DatasetError, match="no clip ground truth"):
        open_dataset(f"synth:{tmp_path}")


def test_open_dataset_spec_errors(tmp_path: Path):
    assert parse_spec("casme2:/a/b?sheet=/c.xlsx&classes=megc3") == (
        "casme2",
        "/a/b",
        {"sheet": "/c.xlsx", "classes": "megc3"},
    )
    with pytest.raises(DatasetError, match="KIND:PATH with KIND one of casme2, samm"):
        open_dataset("casme9:/x")
    with pytest.raises(DatasetError, match="takes the options .*; not modality"):
        open_dataset(f"casme2:{tmp_path}?modality=HS")
    with pytest.raises(DatasetError, match="classes must be one of native, megc3, strcn4"):
        open_dataset(f"casme2:{tmp_path}", classes="five")


def test_megc2019_csv_checks(tmp_path: Path):
    gt = tmp_path / "combined_3class_gt.csv"
    gt.write_text("casme2,sub01,EP02_01f,1\nsamm,6,006_1_2,0\nsmic,s1,s1_ne_01,0\n")
    ds = open_dataset(f"megc2019:{tmp_path}")
    assert [s.key for s in ds.samples] == ["casme2/sub01/EP02_01f", "samm/006/006_1_2", "smic/s01/s01_ne_01"]
    gt.write_text("casme2,sub01,EP02_01f,3\n")
    with pytest.raises(DatasetError, match="line 1: label must be 0 \\(negative\\), 1"):
        open_dataset(f"megc2019:{gt}")


# --- the real sheets ------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_casme2_sheet(shared_data: Path):
    ds = open_dataset(f"casme2:{shared_data / CASME2_SHEET}")
    assert len(ds) == 255 and len(ds.subjects) == 26
    assert ds.counts() == {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 28, "sadness": 4, "fear": 2,
                           "others": 99}  # fmt: skip
    assert [s.key for s in ds.samples if s.apex is None] == ["casme2/sub04/EP12_01f"]  # the one "/" apex
    megc = open_dataset(f"casme2:{shared_data / CASME2_SHEET}", classes="megc3")
    assert megc.counts() == {"negative": 90, "positive": 32, "surprise": 28}
    strcn = open_dataset(f"casme2:{shared_data / CASME2_SHEET}?classes=strcn4")
    assert strcn.counts() == {"negative": 69, "positive": 32, "surprise": 28, "other": 126}


@pytest.mark.realdata
def test_real_samm_sheet(shared_data: Path):
    ds = open_dataset(f"samm:{shared_data / SAMM_SHEET}")
    assert len(ds) == 159 and len(ds.subjects) == 29
    assert ds.samples[0].extra["row"] == 15  # data start under the header at line 14
    assert ds.counts() == {"happiness": 26, "surprise": 15, "anger": 57, "contempt": 12, "disgust": 9, "fear": 8,
                           "sadness": 6, "other": 26}  # fmt: skip
    megc = open_dataset(f"samm:{shared_data / SAMM_SHEET}?classes=megc3")
    assert megc.counts() == {"negative": 92, "positive": 26, "surprise": 15} and len(megc.subjects) == 28


@pytest.mark.realdata
def test_real_megc2019_composite(shared_data: Path):
    ds = open_dataset(f"megc2019:{shared_data / MEGC_GT}")
    assert len(ds) == 442 and len(ds.subjects) == 68
    assert ds.counts() == {"negative": 250, "positive": 109, "surprise": 83}
    per_db = {db: (sum(s.dataset == db for s in ds.samples), len({s.subject for s in ds.samples if s.dataset == db}))
              for db in ds.datasets}  # fmt: skip
    assert per_db == {"casme2": (145, 24), "smic": (164, 16), "samm": (133, 28)}
    # the composite's SAMM rows are exactly the SAMM sheet under the megc3 mapping
    samm = open_dataset(f"samm:{shared_data / SAMM_SHEET}?classes=megc3")
    assert {(s.key, s.label) for s in ds.samples if s.dataset == "samm"} == {(s.key, s.label) for s in samm.samples}
    # its CASME II rows are the sheet's megc3 rows less five (noted in the report)
    casme2 = open_dataset(f"casme2:{shared_data / CASME2_SHEET}?classes=megc3")
    sheet = {(s.key, s.label) for s in casme2.samples}
    comp = {(s.key, s.label) for s in ds.samples if s.dataset == "casme2"}
    assert comp <= sheet and sorted(k for k, _ in sheet - comp) == [
        "casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f", "casme2/sub24/EP07_01", "casme2/sub24/EP07_04f",
        "casme2/sub24/EP10_03",
    ]  # fmt: skip


@pytest.mark.realdata
def test_real_megc2019_joined_with_frames(shared_data: Path, tmp_path: Path):
    """Composite rows take the frames of a CASME II root (the real sheet; tiny frames for two samples)."""
    root = tmp_path / "CASME2"
    _frames(root / "sub01" / "EP02_01f", (46, 59, 86))
    _frames(root / "sub01" / "EP19_05f", (396, 416, 446))
    ds = open_dataset(
        f"megc2019:{shared_data / MEGC_GT}?casme2={root}&casme2_sheet={shared_data / CASME2_SHEET}&missing=skip"
    )
    with_frames = [s for s in ds.samples if s.frames]
    assert [(s.key, s.label_name, s.apex_path.name) for s in with_frames] == [
        ("casme2/sub01/EP02_01f", "positive", "img59.jpg"), ("casme2/sub01/EP19_05f", "negative", "img416.jpg"),
    ]  # fmt: skip
    assert len(ds) == 442 - 143 and len(ds.excluded) == 143


@pytest.mark.realdata
def test_real_casme3_labels(shared_data: Path):
    ds = open_dataset(f"casme3:{shared_data / CASME3_CSV}")
    assert len(ds) == 687 and len(ds.subjects) == 87
    assert ds.counts() == {"happy": 54, "surprise": 184, "sad": 55, "disgust": 247, "fear": 83, "anger": 64}
    megc = open_dataset(f"casme3:{shared_data / CASME3_CSV}?classes=megc3")
    assert megc.counts() == {"negative": 449, "positive": 54, "surprise": 184}
    assert all(int(s.extra["label_for_3"]) == s.label for s in megc.samples)  # the file's own 3-class labels
    videos = Counter((s.subject, s.extra["video"]) for s in ds.samples)
    assert max(videos.values()) > 1  # several expressions in one video: sample ids carry the onset


def test_casmesq_workbook_and_video_folders(tmp_path: Path):
    import openpyxl

    wb = openpyxl.Workbook()
    codes = wb.active
    for r in [(1, "anger1_1", 557, 572, 0, "4+7", "negative", "micro-expression", "angry"),
              (1, "anger1_2", 1000, 1020, 1400, "12", "positive", "macro-expression", "happy"),
              (2, "happy1_1", 30, 33, 40, "12", "others", "micro-expression", "")]:  # fmt: skip
        codes.append(r)
    rule2 = wb.create_sheet("naming rule 2")
    for r in [(None, "s15", 1), (None, "s16", 2)]:
        rule2.append(r)
    rule1 = wb.create_sheet("naming rule 1")
    for r in [("0401", "anger1"), ("0502", "happy1")]:
        rule1.append(r)
    root = tmp_path / "CASME_sq"
    root.mkdir()
    wb.save(root / "CAS(ME)^2code_final.xlsx")
    _frames(root / "rawpic" / "s15" / "15_0401girlcrashing", range(550, 580))
    _frames(root / "rawpic" / "s16" / "16_0502funnyerrors", range(25, 45))
    ds = open_dataset(f"casmesq:{root}")
    assert [(s.subject, s.sample_id, s.label_name, s.onset, s.apex, s.offset) for s in ds.samples] == [
        ("s15", "anger1_1", "negative", 557, 572, 572), ("s16", "happy1_1", "others", 30, 33, 40),
    ]  # fmt: skip
    assert ds.samples[0].apex_path.parent.name == "15_0401girlcrashing" and ds.samples[0].extra["video"] == "0401"
    megc = open_dataset(f"casmesq:{root}?classes=megc3&kind=micro")
    assert len(megc) == 1 and megc.excluded == ("casmesq/s16/happy1_1: 'others' has no megc3 class",)
    with pytest.raises(DatasetError, match="anger1_2: onset frame 1000 is not in"):
        open_dataset(f"casmesq:{root}?kind=all")
    assert len(open_dataset(f"casmesq:{root / 'CAS(ME)^2code_final.xlsx'}?kind=all")) == 3
