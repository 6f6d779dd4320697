"""apps.kept: a kept piece is reused only under its own key; a torn file is redone, not trusted;
fingerprints change with a file's bytes and a folder's files."""

from __future__ import annotations

from apps.kept import fingerprint, keep, load_kept


def test_kept_payload_is_reused_only_under_its_key(tmp_path, capsys):
    path = tmp_path / "k" / "seed1.json"
    assert load_kept(path, {"a": 1}, "seed 1") is None
    keep(path, {"a": 1}, {"x": [1, 2]})
    assert load_kept(path, {"a": 1}, "seed 1") == {"x": [1, 2]}
    assert load_kept(path, {"a": 2}, "seed 1") is None
    assert "seed 1 was kept under other settings" in capsys.readouterr().out
    assert not list(path.parent.glob("*.tmp"))


def test_a_torn_file_is_redone(tmp_path, capsys):
    path = tmp_path / "arm.json"
    path.write_text('{"key": {"a": 1}, "payl')
    assert load_kept(path, {"a": 1}, "arm pop") is None
    assert "not a readable kept arm pop" in capsys.readouterr().out


def test_fingerprints_follow_bytes_and_folders(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 3\n")
    before = fingerprint(f)
    f.write_text("epochs: 4\n")
    assert fingerprint(f) != before
    d = tmp_path / "bundle"
    d.mkdir()
    (d / "model.pt").write_bytes(b"abc")
    one = fingerprint(d)
    assert fingerprint(d) == one
    (d / "extra.json").write_text("{}")
    assert fingerprint(d) != one
