"""Data in an object store, against a real S3 API server (moto's standalone server, started here;
a missing moto fails these tests, it never skips them): partitioned windows, labels from another
prefix, the file cache by ETag, a cost import from a bucket, access denied, a missing bucket, an
unreachable store and a server that goes away in the middle of a read."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from benchmarks.s3server import TEST_CREDENTIALS, S3Server
from controller.adapters.datasource import FileDataSource, day_of, load_window
from controller.adapters.filecache import FileCache
from controller.adapters.objectstore import ObjectStore, store_for
from controller.adapters.registry.base import TrainingRecord
from controller.adapters.trainers import sklearn_classifier
from controller.cli import run
from controller.errors import DataError, RetryLater
from controller.reactors.baseline import build_baseline, features_of
from controller.reactors.check import run_check
from controller.reactors.context import Context
from tests.fakes import InMemoryRegistry
from tests.helpers import T0, make_rows, write_configs

DAYS = 10
NOW = T0 + timedelta(days=DAYS)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket on the server; the test's credentials and endpoint in the environment, as the
    standard chain gives them."""
    for k, v in TEST_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    name = f"b-{uuid.uuid4().hex[:12]}"
    store_for("s3://x").fs.mkdir(name)
    return name


def put(url: str, frame: pd.DataFrame | pa.Table, **parquet: Any) -> None:
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    with store_for(url).fs.open(url, "wb") as f:
        pq.write_table(table, f, **parquet)


def days(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows of each UTC day, by day (YYYY-MM-DD)."""
    key = pd.to_datetime(frame["timestamp"], utc=True).dt.strftime("%Y-%m-%d")
    return {str(d): part for d, part in frame.groupby(key)}


def history(seed: int = 11) -> pd.DataFrame:
    """DAYS days of rows ending at NOW (make_rows spreads rows over a week; two weeks joined)."""
    first = make_rows(3000, NOW - timedelta(days=14), seed=seed)
    second = make_rows(3000, NOW - timedelta(days=7), seed=seed + 1, shift=0.4)
    rows = pd.concat([first, second], ignore_index=True)
    return rows[pd.to_datetime(rows["timestamp"], utc=True) >= NOW - timedelta(days=DAYS)].reset_index(drop=True)


def write_partitioned(root: str, rows: pd.DataFrame, local: Path | None = None) -> None:
    """Rows under ``root``/dt=YYYY-MM-DD/part-0.parquet (labels under ``root``-labels/...), in the
    bucket and, with ``local``, the same layout on disk."""
    for day, part in days(rows).items():
        put(f"{root}/rows/dt={day}/part-0.parquet", part.drop(columns="label"))
        put(f"{root}/labels/dt={day}/labels.parquet", part[["id", "label"]])
        if local is not None:
            for what, frame in (("rows", part.drop(columns="label")), ("labels", part[["id", "label"]])):
                (local / what / f"dt={day}").mkdir(parents=True, exist_ok=True)
                frame.to_parquet(local / what / f"dt={day}" / f"{'part-0' if what == 'rows' else 'labels'}.parquet")


def context(tmp_path: Path, rows: str, labels: str, **extra: Any) -> Context:
    """A service config whose model reads ``rows`` and ``labels`` (paths or URLs), registered
    with a baseline in the in-memory registry."""
    data = {
        "source": {"kind": "files", "path": rows, **extra},
        "labels": {"kind": "files", "path": labels, **extra},
        "min_labeled_rows": 200,
        "window_hours": 168,
    }
    path = write_configs(tmp_path, "unused", data=data)
    registry = InMemoryRegistry()
    ctx = Context.from_config(path, registry=registry, clock=lambda: NOW)
    cfg = ctx.model("m1")
    ref = make_rows(4000, T0 - timedelta(days=14), seed=10)
    features = features_of(cfg, list(ref.columns))
    clf = sklearn_classifier(ref.iloc[:3000], features=features, target="label")
    registry.log_version(
        "m1", TrainingRecord(clf, build_baseline(cfg, clf, ref.iloc[:3000], ref.iloc[3000:], features), {}, {}, 60.0)
    )
    registry.set_alias("m1", "champion", "1")
    return ctx


def test_day_partitions_are_read_from_their_folder_names() -> None:
    assert day_of("dt=2026-11-30") == day_of("2026-11-30") == day_of("20261130") == datetime(2026, 11, 30).date()
    assert day_of("year=2026/month=11/day=30/hour=04") == day_of("2026/11/30") == datetime(2026, 11, 30).date()
    assert day_of("dt=2026-13-01") is None and day_of("region=eu") is None and day_of("v2") is None


def test_a_check_reads_a_hive_partitioned_window_and_labels_from_another_prefix(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """The same check on the bucket and on local files decides alike; the bucket check reads only
    the window's seven days of rows and the labels of those days (a label comes on or after the
    day of its row)."""
    rows = history()
    write_partitioned(f"s3://{bucket}/m1", rows, local=tmp_path / "local")
    (tmp_path / "remote").mkdir()
    remote = context(tmp_path / "remote", f"s3://{bucket}/m1/rows/", f"s3://{bucket}/m1/labels/", endpoint_url=s3.url)
    local = context(tmp_path / "local", str(tmp_path / "local" / "rows"), str(tmp_path / "local" / "labels"))
    mark = s3.mark()
    from_bucket = run_check(remote, "m1", now=NOW)
    read = {r.key for r in s3.requests(mark) if r.method == "GET" and r.key}
    from_disk = run_check(local, "m1", now=NOW)
    assert from_bucket.signals == from_disk.signals and from_bucket.decision == from_disk.decision
    assert from_bucket.signals["n_rows"] > 2000
    window_days = {(NOW - timedelta(days=d)).strftime("%Y-%m-%d") for d in range(1, 8)}
    assert {k for k in read if k.startswith("m1/rows/")} == {f"m1/rows/dt={d}/part-0.parquet" for d in window_days}
    assert {k for k in read if k.startswith("m1/labels/")} == {f"m1/labels/dt={d}/labels.parquet" for d in window_days}
    assert len(days(rows)) == DAYS  # so three days of rows and of labels were left unread


def test_an_unchanged_object_is_read_once_and_a_rewritten_one_again(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    rows = history(seed=21)
    write_partitioned(f"s3://{bucket}/m1", rows)
    cache = FileCache(tmp_path / "cache", 2**30)
    source = FileDataSource(f"s3://{bucket}/m1/rows", "timestamp", cache=cache)
    start, end = NOW - timedelta(days=7), NOW
    first = source.read(start, end)
    mark = s3.mark()
    again = source.read(start, end)
    assert [r for r in s3.requests(mark) if r.method == "GET" and r.key] == []  # listings only
    pd.testing.assert_frame_equal(again, first)
    day = (NOW - timedelta(days=2)).strftime("%Y-%m-%d")
    changed = days(rows)[day].drop(columns="label").assign(x1=0.5)
    put(f"s3://{bucket}/m1/rows/dt={day}/part-0.parquet", changed)
    mark = s3.mark()
    after = source.read(start, end)
    assert [r.key for r in s3.requests(mark) if r.method == "GET" and r.key] == [f"m1/rows/dt={day}/part-0.parquet"]
    assert (after["x1"] == 0.5).sum() == len(changed) and len(after) == len(first)


def test_a_large_object_is_read_by_the_row_groups_of_the_window(
    s3: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the one-request size, an object is read by ranges: its footer and the row groups in
    range, not the whole object."""
    monkeypatch.setattr("controller.adapters.datasource.WHOLE_OBJECT_BYTES", 0)
    rows = history(seed=31).drop(columns="label")
    url = f"s3://{bucket}/big/rows.parquet"
    put(url, rows, row_group_size=500)
    start, end = NOW - timedelta(days=1), NOW
    mark = s3.mark()
    got = FileDataSource(url, "timestamp").read(start, end)
    ranges = [r for r in s3.requests(mark) if r.method == "GET" and r.key]
    expected = rows[pd.to_datetime(rows["timestamp"], utc=True) >= start].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    groups = -(-len(rows) // 500)
    assert 1 < len(ranges) < groups  # the footer and the last groups, not every group


def test_columns_that_change_across_partitions_are_joined_and_reported(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    rows = history(seed=41)
    write_partitioned(f"s3://{bucket}/m1", rows)
    day = (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
    newest = days(rows)[day].drop(columns="label")
    table = pa.Table.from_pandas(newest.assign(channel="web"), preserve_index=False)
    put(f"s3://{bucket}/m1/rows/dt={day}/part-0.parquet", table.set_column(0, "id", table["id"].cast(pa.int64())))
    older = (NOW - timedelta(days=2)).strftime("%Y-%m-%d")
    old = days(rows)[older].drop(columns="label")
    narrow = pa.Table.from_pandas(old, preserve_index=False)
    put(f"s3://{bucket}/m1/rows/dt={older}/part-0.parquet", narrow.set_column(0, "id", narrow["id"].cast(pa.int32())))
    (tmp_path / "c").mkdir()
    ctx = context(tmp_path / "c", f"s3://{bucket}/m1/rows/", f"s3://{bucket}/m1/labels/", endpoint_url=s3.url)
    window = load_window(ctx.model("m1"), NOW, categories=True)
    assert window.rows["channel"].notna().sum() == len(newest)
    assert window.rows["id"].dtype == "int64"
    changes = "\n".join(window.schema_changes)
    assert "channel: missing in 6 of 7 files (null there)" in changes
    assert f"id: int64 in s3://{bucket}/m1/rows/dt={(NOW - timedelta(days=7)):%Y-%m-%d}/part-0.parquet" in changes
    assert f"int32 from s3://{bucket}/m1/rows/dt={older}/part-0.parquet" in changes
    out = run_check(ctx, "m1", now=NOW)
    assert out.signals["schema_changes"] == list(window.schema_changes)


def _focus_csv(path: Path) -> Path:
    rows = [
        {
            "BilledCost": 2.0,
            "EffectiveCost": 2.0,
            "BillingCurrency": "USD",
            "ChargePeriodStart": "2026-11-01T00:00:00Z",
            "ChargePeriodEnd": "2026-11-02T00:00:00Z",
            "ChargeCategory": "Usage",
            "ChargeClass": "",
            "ResourceId": "i-1",
            "ResourceName": "i-1",
            "ServiceCategory": "Compute",
            "ServiceName": "Amazon EC2",
            "SubAccountId": "111122223333",
            "Tags": json.dumps({"model": "m1"}),
        }
    ]
    pd.DataFrame(rows).to_csv(path, index=False, compression="gzip")
    return path


def test_a_cost_import_reads_a_focus_export_from_the_bucket(
    s3: S3Server, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_configs(tmp_path, "data/*.parquet")
    export = _focus_csv(tmp_path / "focus.csv.gz")
    store_for("s3://x").fs.put_file(str(export), f"{bucket}/billing/2026-11/focus.csv.gz")
    assert run(["costs", "import", f"s3://{bucket}/billing/2026-11/focus.csv.gz", "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_read"] == 1 and out["billed_total"] == 2.0
    # a prefix that holds no export, and a bucket that does not exist: one line, exit 2, nothing imported
    assert run(["costs", "import", f"s3://{bucket}/billing/2026-12/focus.csv.gz", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err.strip().endswith("no such bucket, prefix or object")
    assert run(["costs", "import", "s3://no-such-bucket-here/focus.csv", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s3://no-such-bucket-here/focus.csv" in err


def test_commands_read_their_input_files_from_the_bucket(
    s3: S3Server, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, cur = make_rows(800, T0, seed=1), make_rows(800, T0, seed=2, shift=1.0)
    put(f"s3://{bucket}/ref.parquet", ref)
    put(f"s3://{bucket}/cur.parquet", cur)
    args = ["drift", "--reference", f"s3://{bucket}/ref.parquet", "--current", f"s3://{bucket}/cur.parquet"]
    assert run([*args, "--columns", "x1,noise", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {c["column"]: c["drifted"] for c in report["columns"]} == {"x1": False, "noise": True}
    profile = tmp_path / "ref.profile"
    assert run(["profile", "build", "--reference", f"s3://{bucket}/ref.parquet", "--out", str(profile)]) == 0
    store_for("s3://x").fs.put_file(str(profile), f"{bucket}/profiles/ref.profile")
    capsys.readouterr()
    assert (
        run(
            [
                "drift",
                "--profile",
                f"s3://{bucket}/profiles/ref.profile",
                "--current",
                f"s3://{bucket}/cur.parquet",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["dataset"]["drifted"] is True
    assert run(["drift", "--profile", f"s3://{bucket}/profiles/", "--current", f"s3://{bucket}/cur.parquet"]) == 2
    assert "must be one object" in capsys.readouterr().err


def test_an_unreachable_store_exits_75_naming_the_url_without_credentials(
    s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = S3Server(tmp_path / "closed")  # a port nobody listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed.url)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-shown")
    code = run(["drift", "--reference", f"s3://{bucket}/ref.parquet", "--current", f"s3://{bucket}/cur.parquet"])
    err = capsys.readouterr().err
    assert code == 75
    assert err.count("\n") == 1 and f"s3://{bucket}/ref.parquet: object store unreachable" in err
    assert "s3cr3t" not in err and "testing" not in err


def test_access_denied_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """moto checks every request against IAM once told to: a user allowed one bucket only."""
    import boto3

    server = S3Server(tmp_path / "iam")
    server.start()
    try:
        for k, v in TEST_CREDENTIALS.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        s3c, iam = boto3.client("s3"), boto3.client("iam")
        for name in ("open-bucket", "closed-bucket"):
            s3c.create_bucket(Bucket=name)
            s3c.put_object(Bucket=name, Key="ref.csv", Body=b"a,b\n1,2\n3,4\n")
        iam.create_user(UserName="reader")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::open-bucket", "arn:aws:s3:::open-bucket/*"],
                }
            ],
        }
        iam.put_user_policy(UserName="reader", PolicyName="read-open", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        server.enforce_auth_after(0)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        out = tmp_path / "open.profile"
        assert run(["profile", "build", "--reference", "s3://open-bucket/ref.csv", "--out", str(out)]) == 0
        capsys.readouterr()
        assert run(["profile", "build", "--reference", "s3://closed-bucket/ref.csv", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        denied = "access denied (the credentials of the standard chain may not read it)"
        assert err == f"error: s3://closed-bucket/ref.csv: {denied}\n"
        assert key["SecretAccessKey"] not in err
    finally:
        server.stop()


def test_a_server_that_goes_away_mid_read_fails_the_check_and_writes_no_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = S3Server(tmp_path / "dying")
    server.start()
    try:
        for k, v in TEST_CREDENTIALS.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        store_for("s3://x").fs.mkdir("dying")
        rows = history(seed=51)
        write_partitioned("s3://dying/m1", rows)
        ctx = context(tmp_path, "s3://dying/m1/rows/", "s3://dying/m1/labels/", endpoint_url=server.url)
        # read by ranges, and the server stopped once the first range (a footer) has arrived
        monkeypatch.setattr("controller.adapters.datasource.WHOLE_OBJECT_BYTES", 0)
        opened = ObjectStore.open

        def open_then_die(self: ObjectStore, obj: Any) -> Any:
            handle = opened(self, obj)
            inner = handle.__enter__()
            real_read = inner.read

            def read(*args: Any) -> bytes:
                data = real_read(*args)
                server.stop()
                return bytes(data)

            inner.read = read
            return _Entered(handle, inner)

        monkeypatch.setattr(ObjectStore, "open", open_then_die)
        with pytest.raises(RetryLater, match=r"s3://dying/m1/rows/dt=.*: object store unreachable"):
            run_check(ctx, "m1", now=NOW)
        engine = sa.create_engine(ctx.service.store_url)
        with engine.connect() as conn:
            checks = conn.execute(sa.text("select status, error from checks")).all()
            decisions = conn.execute(sa.text("select count(*) from decisions")).scalar()
        engine.dispose()
        assert decisions == 0
        assert len(checks) == 1 and checks[0][0] == "failed" and "unreachable" in checks[0][1]
    finally:
        server.stop()


class _Entered:
    """A context manager that yields an already-entered handle and closes it on exit."""

    def __init__(self, manager: Any, value: Any) -> None:
        self.manager, self.value = manager, value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        self.manager.__exit__(None, None, None)


def test_missing_prefix_and_local_file_urls(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"s3://{bucket}/nothing/: no such bucket, prefix or object"):
        FileDataSource(f"s3://{bucket}/nothing/", "timestamp").read()
    rows = make_rows(100, T0, seed=3)
    (tmp_path / "2026" / "01" / "05").mkdir(parents=True)
    rows.to_parquet(tmp_path / "2026" / "01" / "05" / "rows.parquet")
    source = FileDataSource(tmp_path.as_uri(), "timestamp")
    assert [f.day for f in source.files()] == [T0.date()]
    assert source.files_for(T0 + timedelta(days=1), T0 + timedelta(days=2)) == []
    assert len(source.read(T0, T0 + timedelta(days=7))) == len(rows)
    assert len(source.read(T0 + timedelta(days=1), T0 + timedelta(days=2))) == 0


def test_a_model_file_takes_an_endpoint_and_no_credentials(tmp_path: Path) -> None:
    from controller.config import FileSource

    spec = FileSource.model_validate({"path": "s3://bucket/rows/", "endpoint_url": "http://127.0.0.1:9000"})
    assert spec.endpoint_url == "http://127.0.0.1:9000"
    with pytest.raises(ValueError, match="aws_secret_access_key"):
        FileSource.model_validate({"path": "s3://bucket/rows/", "aws_secret_access_key": "x"})
    assert yaml.safe_dump(spec.model_dump())  # plain data, nothing hidden
