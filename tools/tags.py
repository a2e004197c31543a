"""Look at and edit the discovered tags in the tag database; every edit is recorded in its audit table.

\b
  python tools/tags.py --run output/discover/thucnews list
  python tools/tags.py --db sqlite:///tags.db show 体育 --samples 5
  python tools/tags.py --run output/discover/thucnews rename 3 "财经·股市"
  python tools/tags.py --run ... merge 2 7 --name 足球
  python tools/tags.py --run ... delete 9
  python tools/tags.py --run ... export --output taxonomy.json
  python tools/tags.py --run ... audit

A tag is named by its key (the number ``list`` shows) or its exact name. ``--db`` takes a SQLAlchemy URL or a
path to a SQLite file (also from $PADDLE_TAG_DB); ``--run DIR`` means ``DIR/tags.db``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from paddle_tag.errors import PaddleTagError


@click.group(help=__doc__)
@click.option("--db", envvar="PADDLE_TAG_DB", help="database URL, or a path to a SQLite .db file")
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="a discovery output dir: uses DIR/tags.db")
@click.option("--user", default=None, help="who is editing, for the audit table (default: the login name)")
@click.pass_context
def cli(ctx: click.Context, db: str | None, run_dir: str | None, user: str | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj["user"] = user
    ctx.obj["db"] = db or (str(Path(run_dir) / "tags.db") if run_dir else None)


def _store(ctx: click.Context):
    from paddle_tag.discover.store import TagStore

    db = ctx.obj["db"]
    if not db:
        raise click.UsageError("say which tag database: --db URL|PATH or --run output/discover/<name>")
    return TagStore(db, create=False)


def _echo_json(value) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _keywords(keywords, n: int = 5) -> str:
    return " ".join(word for word, _ in keywords[:n])


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_context
def list_tags(ctx: click.Context, as_json: bool) -> None:
    """The current taxonomy's tags: key, size, name, top keywords."""
    with _store(ctx) as store:
        version, tags = store.current_version(), store.list_tags()
    if as_json:
        _echo_json([tag.to_json() for tag in tags])
        return
    click.echo(f"taxonomy version {version.id} ({version.created:%Y-%m-%d %H:%M} UTC, {len(tags)} tags, "
               f"embedder {version.embedder})")
    for tag in tags:
        click.echo(f"{tag.key:>4}  {tag.size:>7}  {tag.name}  [{_keywords(tag.keywords)}]")


@cli.command()
@click.argument("tag")
@click.option("--samples", default=5, show_default=True, help="sample items (best-scoring first)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
def show(ctx: click.Context, tag: str, samples: int, as_json: bool) -> None:
    """One tag: keywords with weights and sample items."""
    with _store(ctx) as store:
        info = store.show_tag(tag, samples=samples)
    if as_json:
        _echo_json(info)
        return
    click.echo(f"[{info['key']}] {info['name']}  ({info['size']} items; updated {info['updated'][:19]})")
    click.echo("keywords: " + ", ".join(f"{w} {x:.3f}" for w, x in info["keywords"]))
    for sample in info["samples"]:
        click.echo(f"  {sample['score']:.3f}  {sample['text']}")


@cli.command()
@click.argument("tag")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, tag: str, new_name: str) -> None:
    """Rename TAG to NEW_NAME."""
    with _store(ctx) as store:
        old = store.show_tag(tag, samples=0)["name"]
        info = store.rename_tag(tag, new_name, actor=ctx.obj["user"])
    click.echo(f"renamed [{info.key}] {old} → {info.name}")


@cli.command()
@click.argument("tags", nargs=-1, required=True)
@click.option("--name", default=None, help="the merged tag's name (default: the first tag's)")
@click.pass_context
def merge(ctx: click.Context, tags: tuple[str, ...], name: str | None) -> None:
    """Merge TAGS into the first one (which keeps its key); their items move to it."""
    if len(tags) < 2:
        raise click.UsageError("merge needs at least two tags")
    with _store(ctx) as store:
        info = store.merge_tags(list(tags), name=name, actor=ctx.obj["user"])
    click.echo(f"merged {', '.join(tags)} → [{info.key}] {info.name} ({info.size} items)")


@cli.command()
@click.argument("tag")
@click.pass_context
def delete(ctx: click.Context, tag: str) -> None:
    """Delete TAG; its items become unassigned."""
    with _store(ctx) as store:
        info = store.delete_tag(tag, actor=ctx.obj["user"])
    click.echo(f"deleted [{info.key}] {info.name}; its {info.size} items are unassigned")


@cli.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="write here instead of stdout")
@click.option("--no-centroids", is_flag=True, help="leave the centroid vectors out")
@click.pass_context
def export(ctx: click.Context, output: str | None, no_centroids: bool) -> None:
    """The current taxonomy as JSON."""
    with _store(ctx) as store:
        data = store.export_json(centroids=not no_centroids)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"{len(data['tags'])} tags → {output}")
    else:
        click.echo(text)


@cli.command()
@click.option("--limit", default=20, show_default=True, help="newest N edits (0 = all)")
@click.pass_context
def audit(ctx: click.Context, limit: int) -> None:
    """The edit history, newest first, one JSON object a line."""
    with _store(ctx) as store:
        rows = store.audit_log(limit=limit or None)
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False))


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def main(argv=None) -> int:
    """Run the CLI; user errors (bad arguments, unknown tag, missing database) print one line and exit 2."""
    try:
        return cli.main(args=argv, prog_name="tags.py", standalone_mode=False) or 0
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except _NO_ARGS as exc:  # plain `tags.py`: the help, not an error line
        print(exc.format_message(), file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except PaddleTagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
