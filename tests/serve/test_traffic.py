"""The served-traffic log (assets/serve/traffic.py): rows kept in batches, nothing lost when the store fails."""

from __future__ import annotations

import json

from assets.serve.traffic import TrafficLog, request_frame, traffic_version
from resources.artifacts import LocalArtifactStore


def _answer(*predictions) -> bytes:
    return json.dumps({"predictions": list(predictions)}).encode()


def test_requests_in_every_format_become_rows_with_the_version_that_answered(tmp_path):
    store = LocalArtifactStore(base_dir=str(tmp_path))
    log = TrafficLog(store, "shop.clf")
    split = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}
    log.add(json.dumps(split).encode(), "application/json", _answer(0, 1), "champion", "3", "answered")
    records = {"dataframe_records": [{"a": 5, "b": 6}]}
    log.add(json.dumps(records).encode(), "application/json; charset=utf-8", _answer(1), "challenger", "4", "shadow")
    log.add(b"a,b\n7,8\n", "text/csv", _answer(0), "champion", "3", "answered")
    log.add(b"not json", "application/json", _answer(0), "champion", "3", "answered")
    log.flush()
    assert (log.written, log.unreadable) == (4, 1)
    names = store.batches(("shop", "served_clf"))
    assert len(names) == 1
    table = store.read_batches(("shop", "served_clf"), names)
    assert table[["a", "b", "prediction", "_version", "_alias", "_role"]].values.tolist() == [
        [1, 2, 0, "3", "champion", "answered"],
        [3, 4, 1, "3", "champion", "answered"],
        [5, 6, 1, "4", "challenger", "shadow"],
        [7, 8, 0, "3", "champion", "answered"],
    ]
    assert traffic_version(names) != traffic_version([]) == "no traffic"


def test_rows_the_store_does_not_take_are_written_at_the_next_flush(tmp_path):
    store = LocalArtifactStore(base_dir=str(tmp_path))
    log = TrafficLog(store, "shop.clf")
    broken = {"on": True}
    original = store.append_batch

    def append(key, name, frame):
        if broken["on"]:
            raise OSError("disk full")
        original(key, name, frame)

    object.__setattr__(store, "append_batch", append)
    body = json.dumps({"inputs": [{"a": 1}]}).encode()
    log.add(body, "application/json", _answer(1), "champion", "1", "answered")
    log.flush()
    assert log.written == 0 and store.batches(("shop", "served_clf")) == []
    broken["on"] = False
    log.add(body, "application/json", _answer(0), "champion", "1", "answered")
    log.flush()
    assert log.written == 2
    assert len(store.read_batches(("shop", "served_clf"), store.batches(("shop", "served_clf")))) == 2


def test_a_request_that_is_not_tabular_is_not_a_row():
    assert request_frame(b'{"inputs": [[1, 2]]}', "application/json") is None
    assert request_frame(b"\x00\x01", "application/octet-stream") is None
    assert list(request_frame(b'{"instances": [{"x": 1}]}', "application/json").columns) == ["x"]


def test_a_column_whose_requests_disagree_on_its_type_is_kept_as_text(tmp_path):
    store = LocalArtifactStore(base_dir=str(tmp_path))
    log = TrafficLog(store, "shop.clf")
    for value in (1, "x"):
        body = json.dumps({"dataframe_records": [{"a": value}]}).encode()
        log.add(body, "application/json", _answer(0), "champion", "1", "answered")
    log.flush()
    table = store.read_batches(("shop", "served_clf"), store.batches(("shop", "served_clf")))
    assert table["a"].tolist() == ["1", "x"] and log.written == 2


def test_columns_named_by_number_are_kept_as_text_names(tmp_path):
    store = LocalArtifactStore(base_dir=str(tmp_path))
    log = TrafficLog(store, "shop.clf")
    body = json.dumps({"dataframe_split": {"data": [[1, 2]]}}).encode()  # no column names
    log.add(body, "application/json", _answer(0), "champion", "1", "answered")
    log.flush()
    table = store.read_batches(("shop", "served_clf"), store.batches(("shop", "served_clf")))
    assert log.written == 1 and table[["0", "1"]].values.tolist() == [[1, 2]]


def test_drift_reads_only_what_the_champion_answered_since_the_model_last_trained(tmp_path):
    import pandas as pd

    from assets.serve.traffic import answered_since

    store = LocalArtifactStore(base_dir=str(tmp_path))
    key = ("shop", "served_clf")

    def batch(at: float, version: str, role: str = "answered") -> None:
        frame = pd.DataFrame(
            {
                "a": [at],
                "prediction": [0],
                "_served_at": [at],
                "_version": [version],
                "_alias": ["champion"],
                "_role": [role],
                "_request": [""],
            }
        )
        store.append_batch(key, f"{int(at * 1e9):020d}-w.parquet", frame)

    batch(100.0, "1")  # before the last training
    batch(200.0, "1")
    batch(210.0, "2")  # another version
    batch(220.0, "1", role="shadow")
    rows = answered_since(store, "shop.clf", "1", since=150.0)
    assert rows["a"].tolist() == [200.0] and list(rows.columns) == ["a", "prediction"]
    assert answered_since(store, "shop.clf", "1", since=300.0).empty
