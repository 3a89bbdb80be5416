"""Every format opened by URL gives what the same file gives locally: entries, bytes, dump text
and conversions, from nginx (HTTP ranges) and from both S3 servers, moto's and s3rver
(configured by the environment); Azure Blob's run is in ``tests/sources`` (one Azurite a session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from models import arrays, write_model
from remote_servers import Nginx, S3Server, aws_env, put_object

import paramio
from paramio.cli.main import main
from paramio.core.errors import InvalidArgumentError, SourceError
from paramio.index.index import ParameterIndex
from paramio.sources import open_source

FORMATS = ["irpa", "safetensors", "gguf"]


def _serve(kind: str, request: pytest.FixtureRequest, local: Path, tmp_path: Path) -> str:
    """`local` (and the files beside it) served by `kind`; the URL of `local`."""
    if kind == "nginx":
        nginx: Nginx = request.getfixturevalue("nginx")
        folder = request.getfixturevalue("nginx_dir")
        for f in local.parent.iterdir():
            shutil.copy(f, folder / f.name)
        return f"{nginx.url}/{folder.name}/{local.name}"
    server = aws_env(request.getfixturevalue(kind), request.getfixturevalue("monkeypatch"))
    for f in local.parent.iterdir():
        put_object(server, f"models/{tmp_path.name}/{f.name}", f.read_bytes())
    return f"s3://models/{tmp_path.name}/{local.name}"


def _dump(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["dump", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", ["nginx", "moto", "s3rver"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_url_opens_equal_to_local_file(
    fmt: str, kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "src").mkdir()
    local = write_model(tmp_path / "src", fmt)
    url = _serve(kind, request, local, tmp_path)

    here, there = ParameterIndex.open(local), ParameterIndex.open(url)
    assert there.keys() == here.keys()
    assert there.attributes == here.attributes
    for (k, a), (_, b) in zip(here.items(), there.items(), strict=True):
        assert (b.kind, b.length, b.metadata, b.tensor) == (a.kind, a.length, a.metadata, a.tensor), k
        remote = b.to_numpy()
        np.testing.assert_array_equal(remote, a.to_numpy())
        assert remote.tobytes() == a.read()
        assert not remote.flags.writeable  # a view of a fresh buffer read for it: never shared bytes
    assert there.paths == [url]

    # dump: the same text but for the name shown.
    ours, theirs = _dump(capsys, f"--parameters={local}"), _dump(capsys, f"--parameters={url}")
    assert theirs.replace(url, str(local)) == ours

    # convert remote -> local gives the bytes local -> local gives.
    for target in FORMATS:
        out_local, out_remote = tmp_path / f"a{target}", tmp_path / f"b{target}"
        ext = {"irpa": ".irpa", "safetensors": ".safetensors", "gguf": ".gguf"}[target]
        assert main(["convert", f"--parameters={local}", f"--output={out_local}{ext}"]) == 0
        assert main(["convert", f"--parameters={url}", f"--output={out_remote}{ext}"]) == 0
        capsys.readouterr()
        assert Path(f"{out_remote}{ext}").read_bytes() == Path(f"{out_local}{ext}").read_bytes(), target


def test_load_takes_a_url(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    local = write_model(tmp_path, "safetensors")
    shutil.copy(local, nginx_dir / local.name)
    got = paramio.load(f"{nginx.url}/{nginx_dir.name}/{local.name}")
    want = arrays()
    assert list(got) == list(want)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v)


def test_writable_url_and_url_options_on_a_local_file_are_refused(
    nginx: Nginx, nginx_dir: Path, tmp_path: Path
) -> None:
    local = write_model(tmp_path, "irpa")
    shutil.copy(local, nginx_dir / local.name)
    with pytest.raises(InvalidArgumentError, match="cannot be opened writable"):
        ParameterIndex.open(f"{nginx.url}/{nginx_dir.name}/{local.name}", writable=True)
    with pytest.raises(InvalidArgumentError, match="apply to URLs only"):
        ParameterIndex.open(local, cache=str(tmp_path / "cache"))


def test_missing_url_is_a_one_line_cli_error(nginx: Nginx, nginx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{nginx.url}/{nginx_dir.name}/absent.safetensors"
    with pytest.raises(SourceError, match="404"):
        ParameterIndex.open(url)
    assert main(["dump", f"--parameters={url}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and url in err[0] and "404" in err[0]


def test_convert_uploads_to_s3_atomically(s3_env: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = write_model(tmp_path, "safetensors")
    url = f"s3://models/{tmp_path.name}/out.irpa"
    assert main(["convert", f"--parameters={local}", f"--output={url}"]) == 0
    listing = capsys.readouterr().out
    assert main(["convert", f"--parameters={local}", f"--output={tmp_path / 'want.irpa'}"]) == 0
    with open_source(url) as up:
        assert up.read(0, up.size) == (tmp_path / "want.irpa").read_bytes()
    assert listing.replace(url, "") == capsys.readouterr().out.replace(str(tmp_path / "want.irpa"), "")
    assert s3_env.pending_uploads("models") == []


def test_failed_conversion_to_s3_leaves_no_object(
    moto_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from paramio.sources import upload

    local = write_model(tmp_path, "safetensors")
    url = f"s3://models/{tmp_path.name}/out.irpa"
    real = upload.RemoteUpload.write
    calls = []

    def failing(self: upload.RemoteUpload, data: object) -> int:
        calls.append(1)
        if len(calls) > 1:
            self.abort()
            raise upload.WriteError("connection reset", path=self.url)
        return real(self, data)  # type: ignore[arg-type]

    import paramio.formats.uploads as uploads

    monkeypatch.setattr(uploads, "_CHUNK", 100_000)
    monkeypatch.setattr(upload.RemoteUpload, "write", failing)
    assert main(["convert", f"--parameters={local}", f"--output={url}"]) == 1
    assert "connection reset" in capsys.readouterr().err
    assert f"{tmp_path.name}/out.irpa" not in " ".join(moto_env.keys("models"))
    assert moto_env.pending_uploads("models") == []


def test_credentials_never_appear_in_dump_json(
    s3_env: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m").mkdir()
    local = write_model(tmp_path / "m", "irpa")
    put_object(s3_env, f"models/{tmp_path.name}/model.irpa", local.read_bytes())
    url = f"s3://models/{tmp_path.name}/model.irpa"
    assert main(["dump", "--json", f"--parameters={url}"]) == 0
    out = capsys.readouterr()
    assert url in out.out
    for secret in ("env-secret-do-not-show", s3_env.key_id):
        assert secret not in out.out + out.err
    # A missing object's error names the URL, never the keys.
    assert main(["dump", "--json", f"--parameters=s3://models/{tmp_path.name}/absent.irpa"]) == 1
    err = capsys.readouterr().err
    assert "absent.irpa" in err and "env-secret-do-not-show" not in err and s3_env.key_id not in err


@pytest.mark.parametrize("fmt", FORMATS)
def test_which_and_verify_take_urls(
    fmt: str, nginx: Nginx, nginx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = write_model(tmp_path, fmt)
    shutil.copy(local, nginx_dir / local.name)
    url = f"{nginx.url}/{nginx_dir.name}/{local.name}"
    for command in (["verify", str(local)], ["which", f"--parameters={local}", "tiny"]):
        assert main(command) == 0
        want = capsys.readouterr().out
        assert main([c.replace(str(local), url) for c in command]) == 0
        assert capsys.readouterr().out.replace(url, str(local)) == want


def test_cli_load_takes_a_url(
    nginx: Nginx, nginx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = write_model(tmp_path, "gguf")
    shutil.copy(local, nginx_dir / local.name)
    assert main(["load", f"--parameters={nginx.url}/{nginx_dir.name}/{local.name}", "--quiet"]) == 0
    assert "7 tensors" in capsys.readouterr().out


def test_user_info_in_a_url_is_never_shown(
    nginx: Nginx, nginx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_model(tmp_path, "irpa", max_shard_size=100_000)
    for f in tmp_path.iterdir():
        shutil.copy(f, nginx_dir / f.name)
    host = nginx.url.removeprefix("http://")
    url = f"http://someone:hunter2@{host}/{nginx_dir.name}/model.irpa.index.json"
    assert main(["dump", "--json", f"--parameters={url}"]) == 0
    out = capsys.readouterr().out
    assert f"http://{host}/{nginx_dir.name}/model-00001-of-00004.irpa" in out
    assert "hunter2" not in out and "someone" not in out
    # Readers name the path they were given in their errors: shown without its user info.
    (nginx_dir / "model.irpa.index.json").write_text("{not json")
    assert main(["dump", f"--parameters={url}"]) == 1
    err = capsys.readouterr().err
    assert "not valid JSON" in err and f"{host}/{nginx_dir.name}/model.irpa.index.json" in err
    assert "hunter2" not in err and "someone" not in err


def test_mlir_import_takes_a_url(nginx: Nginx, nginx_dir: Path, tmp_path: Path) -> None:
    index = ParameterIndex()
    index.add_array("w", np.arange(4, dtype=np.float32))
    index.create_archive_file(nginx_dir / "w.irpa")
    src = tmp_path / "p.mlir"
    src.write_text('util.global private @w = #flow.parameter.named<"m"::"w"> : tensor<4xf32>\n')
    outs = []
    for where in (str(nginx_dir / "w.irpa"), f"{nginx.url}/{nginx_dir.name}/w.irpa"):
        out = tmp_path / f"o{len(outs)}.mlir"
        assert main(["mlir", "import", str(src), f"--parameters=m={where}", f"--output={out}"]) == 0
        outs.append(out.read_text())
    assert outs[0] == outs[1] and "0x04000000000000000000803F0000004000004040" in outs[0]


def test_sharded_set_written_to_s3_opens_from_its_index(s3_env: S3Server, tmp_path: Path) -> None:
    from models import entries

    from paramio.formats.registry import write_path

    tensors = arrays()
    url = f"s3://models/{tmp_path.name}/model.safetensors.index.json"
    write_path(url, entries(tensors), format="safetensors", max_shard_size=100_000)
    keys = [k for k in s3_env.keys("models") if k.startswith(f"{tmp_path.name}/")]
    shards = [k for k in keys if k.endswith(".safetensors")]
    assert len(shards) >= 3 and f"{tmp_path.name}/model.safetensors.index.json" in keys
    back = ParameterIndex.open(url)
    assert back.keys() == list(tensors)
    for k, v in tensors.items():
        np.testing.assert_array_equal(back[k].to_numpy(), v)
    assert s3_env.pending_uploads("models") == []
