"""The local stack's event log storage: Dagster's SQLite files, one engine per database."""

from __future__ import annotations

import dagster as dg

from stacks import load_stack
from stacks.build import prepare_instance
from stacks.dagster_storage import _MAX_ENGINES, SlipwayEventLogStorage


@dg.asset(key=["t", "one"])
def one() -> int:
    return 1


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(prepare_instance(load_stack().stack)))


def _materialize(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([one], instance=instance)
    assert result.success
    return result.run_id


def test_two_instances_on_one_home_see_each_others_events(home):
    """Like the UI and `slipway run` in two processes: neither's cached engines hide the other's writes."""
    with _instance() as first, _instance() as second:
        assert isinstance(first.event_log_storage, SlipwayEventLogStorage)
        run_a = _materialize(first)
        assert second.get_latest_materialization_event(one.key).run_id == run_a
        run_b = _materialize(second)
        assert first.get_latest_materialization_event(one.key).run_id == run_b
        assert [e.run_id for e in first.fetch_materializations(one.key, limit=10).records] == [run_b, run_a]
        assert len(first.all_logs(run_a)) == len(second.all_logs(run_a)) > 0


def test_engines_are_bounded_and_evicted_runs_still_read(home):
    with _instance() as instance:
        runs = [_materialize(instance) for _ in range(3)]
        storage = instance.event_log_storage
        for i in range(_MAX_ENGINES + 5):
            with storage.run_connection(f"scratch-{i}"):
                pass
        assert len(storage._engines) <= _MAX_ENGINES
        assert all(instance.all_logs(run_id) for run_id in runs)  # their engines were evicted, reopened


def test_a_wiped_instance_is_written_again(home):
    """`wipe()` deletes the databases; the next events recreate them through the cached engines."""
    with _instance() as instance:
        _materialize(instance)
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=["t", "source"]))
        instance.wipe()
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=["t", "source"]))
        run_id = _materialize(instance)
        assert instance.get_latest_materialization_event(one.key).run_id == run_id


def test_a_database_deleted_by_another_process_is_set_up_again_not_written_through_a_kept_connection(home):
    """Connections are kept open between uses; a file deleted under them must not swallow events."""
    import os
    import subprocess

    from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME

    with _instance() as instance:
        storage = instance.event_log_storage
        _materialize(instance)
        index = storage.path_for_shard(INDEX_SHARD_NAME)
        # Removed by another process, the way a wipe there does it.
        subprocess.run(["rm", "-f", index, f"{index}-wal", f"{index}-shm"], check=True)
        run_id = _materialize(instance)
        assert os.path.exists(index)
        assert instance.get_latest_materialization_event(one.key).run_id == run_id
    with _instance() as fresh:  # another process sees what was written after the deletion
        assert fresh.get_latest_materialization_event(one.key).run_id == run_id


def test_a_run_database_deleted_after_its_engine_was_evicted_is_set_up_again(home):
    import os

    with _instance() as instance:
        storage = instance.event_log_storage
        run_id = _materialize(instance)
        for i in range(_MAX_ENGINES + 1):  # the run's engine is evicted, its shard still counted as set up
            with storage.run_connection(f"scratch-{i}"):
                pass
        path = storage.path_for_shard(run_id)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        assert instance.all_logs(run_id) == []  # an empty run, not "no such table"


def test_a_forked_child_opens_its_own_connections(home):
    import os

    with _instance() as instance:
        run_id = _materialize(instance)
        storage = instance.event_log_storage
        inherited = {id(engine) for engine in storage._engines.values()}
        pid = os.fork()
        if pid == 0:  # the child: reads through engines (and connections) of its own
            seen = instance.get_latest_materialization_event(one.key).run_id == run_id
            own = not inherited & {id(engine) for engine in storage._engines.values()}
            os._exit(0 if seen and own else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's kept connections still work after the child exited.
        assert instance.get_latest_materialization_event(one.key).run_id == run_id


def test_tick_logs_are_kept_and_step_output_is_not_captured(tmp_path):
    """The private API stacks.dagster_logs relies on: Dagster's local log manager, its log key paths."""
    import sys

    from dagster._core.storage.compute_log_manager import ComputeIOType

    from stacks.dagster_logs import TickLogsOnly

    manager = TickLogsOnly.from_config_value(None, {"base_dir": str(tmp_path)})
    before = sys.stdout
    with manager.capture_logs(["run", "step"]):
        assert sys.stdout is before  # no mirror, no `tail -F` behind it
    assert not any(tmp_path.rglob("*")), list(tmp_path.rglob("*"))
    with manager.open_log_stream(["repo", "sensor", "tick"], ComputeIOType.STDERR) as stream:
        stream.write("tick decided\n")
    assert "tick decided" in manager.get_log_data(["repo", "sensor", "tick"]).stderr.decode()


def _schema(path) -> tuple[list[tuple[str, str, str]], list[str], str]:
    """A SQLite file's tables, indexes and their SQL; its alembic revision; its journal mode."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        objects = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return objects, revisions, mode


def test_a_new_run_database_is_set_up_as_dagster_sets_it_up(tmp_path, monkeypatch):
    """The cheaper set-up of a run's database (no alembic command per run) leaves the file Dagster's own would."""
    from dagster._core.storage import sql
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    plain = SqliteEventLogStorage(str(tmp_path / "plain"))
    with plain.run_connection("run-a"):
        pass
    ours = SlipwayEventLogStorage(str(tmp_path / "ours"))  # its index is Dagster's own set-up, once

    def no_command(*args, **kwargs):
        raise AssertionError("a run's database was set up with alembic's command")

    monkeypatch.setattr(sql, "stamp", no_command)  # what Dagster's set-up stamps with
    with ours.run_connection("run-a"):
        pass
    monkeypatch.undo()
    theirs = _schema(tmp_path / "plain" / "run-a.db")
    assert theirs[1] and theirs[2] == "wal"  # stamped at head, in WAL mode
    assert _schema(tmp_path / "ours" / "run-a.db") == theirs
    # And Dagster's own storage takes ours as set up: it reads and writes it without a migration.
    again = SqliteEventLogStorage(str(tmp_path / "ours"))
    with again.run_connection("run-a"):
        pass
    assert _schema(tmp_path / "ours" / "run-a.db") == theirs
    plain.dispose(), ours.dispose(), again.dispose()


def test_a_run_database_set_up_by_two_processes_at_once_is_set_up_once(tmp_path):
    """Step processes start together and each sets up the run's database: no error, one stamp."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    SlipwayEventLogStorage(str(tmp_path)).dispose()  # the index, set up once
    with context.Manager() as manager:
        ready = manager.Barrier(8)  # all at once, past their imports
        with context.Pool(8) as pool:
            pool.map(_set_up, [(str(tmp_path), "run-b", ready)] * 8)
    objects, revisions, mode = _schema(tmp_path / "run-b.db")
    assert len(revisions) == 1 and mode == "wal" and objects


def _set_up(args: tuple) -> None:
    base, shard, ready = args
    storage = SlipwayEventLogStorage(base)
    ready.wait(timeout=120)
    with storage.run_connection(shard):
        pass
    storage.dispose()


KILLED_WRITER = """
import sys, time
import dagster as dg
from stacks import load_stack
from stacks.build import prepare_instance
instance = dg.DagsterInstance.from_config(str(prepare_instance(load_stack().stack)))
key = dg.AssetKey(["t", "seen"])
for i in range(40):
    instance.report_runless_asset_event(dg.AssetObservation(asset_key=key, partition=f"p{i}"))
print("written", flush=True)
time.sleep(120)
"""


def test_commits_do_not_wait_for_the_disk_and_survive_the_process_being_killed(home):
    """WAL with synchronous=NORMAL: a commit is the OS's once written; a SIGKILL right after loses nothing."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import REPO

    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        os.kill(child.pid, signal.SIGKILL)  # with its connections open, nothing closed or checkpointed
    finally:
        child.kill()
        child.wait()
    with _instance() as instance:
        seen = instance.fetch_observations(dg.AssetKey(["t", "seen"]), limit=100).records
        assert len(seen) == 40
        storage = instance.event_log_storage
        with storage.index_connection() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: synced at checkpoints


def test_a_table_the_index_has_is_looked_up_once_and_one_it_lacks_each_time(home, monkeypatch):
    from dagster._core.storage.event_log.sqlite import sqlite_event_log

    with _instance() as instance:
        storage = instance.event_log_storage
        opened = []
        real = sqlite_event_log.create_engine
        monkeypatch.setattr(sqlite_event_log, "create_engine", lambda *a, **k: opened.append(1) or real(*a, **k))
        assert storage.has_table("asset_event_tags") and storage.has_table("asset_event_tags")
        assert not storage.has_table("no_such_table") and not storage.has_table("no_such_table")
        assert len(opened) == 3  # found once; one not found is asked each time
        storage.wipe()  # its rows go; its tables stay
        assert storage.has_table("asset_event_tags") and not storage.has_table("no_such_table")
