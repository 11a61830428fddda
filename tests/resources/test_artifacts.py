"""The local artifact store's Parquet files: the same table back, faster than pandas' default."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from resources.artifacts import LocalArtifactStore
from resources.errors import DataError
from resources.tables import read_parquet, write_parquet


def test_every_dtype_reads_back_as_written_and_as_pandas_reads_it(tmp_path):
    frame = pd.DataFrame(
        {
            "i": np.arange(5),
            "f": [0.5, np.nan, 2.0, 3.0, 4.0],
            "s": ["a", "a", None, "b", "a"],
            "c": pd.Categorical(list("xyzxy")),
            "d": pd.date_range("2020-01-01", periods=5, tz="UTC"),
            "b": [True, False, True, None, True],
            "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        }
    )
    write_parquet(frame, tmp_path / "t.parquet")
    back = read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)
    # Dictionary encoding where values repeat (text), not on numbers, where it only costs time.
    column = {
        c.path_in_schema: c
        for c in (pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0).column(i) for i in range(7))
    }
    assert "RLE_DICTIONARY" in str(column["s"].encodings) or "PLAIN_DICTIONARY" in str(column["s"].encodings)
    assert not any("DICTIONARY" in e for e in column["f"].encodings)


def test_column_names_that_are_not_text_are_refused_not_renamed(tmp_path):
    store = LocalArtifactStore(base_dir=str(tmp_path))
    with pytest.raises(
        DataError,
        match=r"artifact store \(local\): p/t: cannot store the table as Parquet: column names must be text, not 0",
    ):
        store.write(("p", "t"), pd.DataFrame({0: [1, 2]}), "run1")
    assert not list((tmp_path / "p" / "t").glob("*.parquet"))
