"""`imts doctor`: the health of this installation, as a table or JSON."""

from __future__ import annotations

from typing import Literal

import typer
from rich.table import Table

from imts.cli.common import console, print_json

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "missing": "dim"}
_ZH = {
    "database": "数据库",
    "artifacts": "工件目录",
    "model_cache": "模型缓存",
    "sandbox": "沙箱",
    "browser": "浏览器",
    "ray": "Ray",
    "ok": "正常",
    "warn": "警告",
    "fail": "故障",
    "missing": "未安装",
}


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    lang: Literal["en", "zh"] = typer.Option("en", "--lang", help="Language of the table: en or zh."),
) -> None:
    """Check the installation: database (reachable, migrated), artifacts folder writable, model cache,
    sandbox (confined, opted out or refused), browser (chromium), Ray. Exits 1 when a required part is
    broken."""
    from imts.core.settings import get_settings
    from imts.services.doctor import diagnose

    report = diagnose(get_settings())
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        word = (lambda s: _ZH.get(s, s)) if lang == "zh" else (lambda s: s)
        table = Table(title="IMTS 安装检查" if lang == "zh" else "IMTS installation")
        for column in (
            ("检查", "状态", "必需", "详情") if lang == "zh" else ("check", "status", "required", "detail")
        ):
            table.add_column(column, overflow="fold")
        for c in report.checks:
            required = ("是" if c.required else "否") if lang == "zh" else ("yes" if c.required else "no")
            table.add_row(word(c.name), f"[{_STYLE[c.status]}]{word(c.status)}[/]", required, c.detail)
        console.print(table)
        verdict = (
            ("正常" if report.healthy else "有必需部分故障")
            if lang == "zh"
            else ("healthy" if report.healthy else "a required part is broken")
        )
        console.print(f"[{'green' if report.healthy else 'bold red'}]{verdict}[/]")
    if not report.healthy:
        raise typer.Exit(1)
