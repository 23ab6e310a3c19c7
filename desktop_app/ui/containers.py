"""The Containers tab: what runs on this computer for the pool, how it is doing, its log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QFontDatabase, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.agent.agent import describe_container
from desktop_app.agent.containers import ContainerDetails
from desktop_app.agent.contribution import Contribution, Snapshot
from desktop_app.ui.tasks import BackgroundTasks
from shared import ContainerReport
from shared.units import format_bytes

STATS_INTERVAL_MS = 3000
"""How often CPU and memory are read while the tab is on screen (never when it is not)."""
LOG_TAIL = 200

COLUMNS = ("Service", "Image", "State", "CPU", "Memory", "Up for", "Download")
SERVICE, IMAGE, STATE, CPU, MEMORY, UPTIME, PROGRESS = range(len(COLUMNS))

_STATE_WORDS = {
    "pulling": "Downloading",
    "starting": "Starting",
    "running": "Running",
    "unhealthy": "Not answering",
    "exited": "Stopped",
    "error": "Cannot run",
}


def format_uptime(uptime: timedelta | None) -> str:
    """``"3 min"``, ``"2 h 5 min"``, ``"4 days"``; an empty string when unknown."""
    if uptime is None:
        return ""
    seconds = int(uptime.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days = hours // 24
    return f"{days} day" if days == 1 else f"{days} days"


class ContainersPage(QWidget):
    """A table of the pool's containers here, and the selected one's log."""

    def __init__(
        self,
        contribution: Contribution,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._contribution = contribution
        self._tasks = tasks
        self._reports: list[ContainerReport] = []
        self._details: dict[str, ContainerDetails] = {}
        self._stats_in_flight = False
        self._log_in_flight = False
        self._log_again = False

        layout = QVBoxLayout(self)
        self.empty = QLabel(
            "Nothing runs for the pool on this computer right now. When the pool gives this "
            "computer work, its containers appear here with what they use."
        )
        self.empty.setWordWrap(True)
        layout.addWidget(self.empty)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(IMAGE, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        splitter.addWidget(self.table)

        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_header = QHBoxLayout()
        self.log_title = QLabel("Select a container to see its log.")
        log_header.addWidget(self.log_title, 1)
        self.refresh_log = QPushButton("Refresh log")
        self.refresh_log.clicked.connect(self._load_log)
        log_header.addWidget(self.refresh_log)
        log_layout.addLayout(log_header)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log.setFont(mono)
        log_layout.addWidget(self.log)
        splitter.addWidget(log_box)
        splitter.setSizes([220, 180])
        layout.addWidget(splitter, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(STATS_INTERVAL_MS)
        self._timer.timeout.connect(self._refresh_stats)
        self._show_rows()

    # -- following the engine -------------------------------------------------------------

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Show the containers in ``snapshot``."""
        reports = list(snapshot.status.containers) if snapshot.status is not None else []
        if reports != self._reports:
            self._reports = reports
            self._show_rows()

    def row_of(self, service: str) -> int | None:
        """The table row showing ``service``."""
        for row in range(self.table.rowCount()):
            item = self.table.item(row, SERVICE)
            if item is not None and item.text() == service:
                return row
        return None

    def progress_bar(self, service: str) -> QProgressBar | None:
        """The download progress bar of ``service``, while it downloads."""
        row = self.row_of(service)
        if row is None:
            return None
        widget = self.table.cellWidget(row, PROGRESS)
        return widget if isinstance(widget, QProgressBar) else None

    def _show_rows(self) -> None:
        selected = self._selected_service()
        self.empty.setVisible(not self._reports)
        self.table.setVisible(bool(self._reports))
        self.table.setRowCount(len(self._reports))
        for row, report in enumerate(self._reports):
            self._set(row, SERVICE, report.service)
            self._set(row, IMAGE, report.image)
            state = self._set(row, STATE, _STATE_WORDS.get(report.state, report.state))
            state.setToolTip(describe_container(report))
            self._show_figures(row, report.service)
            self._show_progress(row, report)
        selected_row = self.row_of(selected) if selected is not None else None
        if selected_row is None and self._reports:
            selected_row = 0  # show a log straight away rather than an empty pane
        if selected_row is not None:
            self.table.selectRow(selected_row)

    def _set(self, row: int, column: int, text: str) -> QTableWidgetItem:
        item = self.table.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(row, column, item)
        if item.text() != text:
            item.setText(text)
        return item

    def _show_progress(self, row: int, report: ContainerReport) -> None:
        current = self.table.cellWidget(row, PROGRESS)
        if report.state != "pulling":
            if current is not None:
                self.table.removeCellWidget(row, PROGRESS)
            self._set(row, PROGRESS, "")
            return
        bar = current if isinstance(current, QProgressBar) else QProgressBar()
        if bar is not current:
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            self.table.setCellWidget(row, PROGRESS, bar)
        if report.progress is None:
            bar.setRange(0, 0)  # busy: the registry did not say the sizes
        else:
            bar.setRange(0, 1000)
            bar.setValue(round(report.progress * 1000))
            done = format_bytes(report.bytes_done) if report.bytes_done is not None else ""
            total = format_bytes(report.bytes_total) if report.bytes_total else ""
            bar.setFormat(f"{report.progress:.0%}" + (f"  {done} of {total}" if total else ""))

    def _show_figures(self, row: int, service: str) -> None:
        details = self._details.get(service)
        if details is None:
            for column in (CPU, MEMORY, UPTIME):
                self._set(row, column, "")
            return
        self._set(
            row, CPU, f"{details.cpu_percent:.1f}%" if details.cpu_percent is not None else ""
        )
        if details.memory_bytes is None:
            memory = ""
        elif details.memory_limit_bytes:
            limit = format_bytes(details.memory_limit_bytes)
            memory = f"{format_bytes(details.memory_bytes)} of {limit}"
        else:
            memory = format_bytes(details.memory_bytes)
        self._set(row, MEMORY, memory)
        self._set(row, UPTIME, format_uptime(details.uptime(datetime.now(UTC))))

    # -- figures and logs, read off the UI thread ------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        """Read the figures while the tab is on screen."""
        super().showEvent(event)
        self._timer.start()
        self._refresh_stats()

    def hideEvent(self, event: QHideEvent) -> None:
        """Stop reading the figures when the tab is not on screen."""
        super().hideEvent(event)
        self._timer.stop()

    def _refresh_stats(self) -> None:
        if self._stats_in_flight or not self._reports:
            return
        self._stats_in_flight = True
        self._tasks.run(
            self._contribution.container_details, self._take_details, self._stats_failed
        )

    def _take_details(self, details: list[ContainerDetails]) -> None:
        self._stats_in_flight = False
        self._details = {item.service: item for item in details}
        for row, report in enumerate(self._reports):
            self._show_figures(row, report.service)

    def _stats_failed(self, _error: Exception) -> None:
        self._stats_in_flight = False

    def _selected_service(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), SERVICE)
        return item.text() if item is not None else None

    def _selection_changed(self) -> None:
        service = self._selected_service()
        if service is None:
            self.log_title.setText("Select a container to see its log.")
            return
        self.log_title.setText(f"Log of {service} (last {LOG_TAIL} lines)")
        self._load_log()

    def _load_log(self) -> None:
        service = self._selected_service()
        if service is None:
            return
        if self._log_in_flight:
            self._log_again = True  # read the selection's log when this read is done
            return
        self._log_in_flight = True
        self._log_again = False

        def show(text: str) -> None:
            self._log_in_flight = False
            if self._selected_service() == service:
                self.log.setPlainText(text)
                self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())
            if self._log_again or self._selected_service() != service:
                self._load_log()

        def failed(error: Exception) -> None:
            show(f"The log could not be read: {error}")

        self._tasks.run(lambda: self._contribution.container_logs(service, LOG_TAIL), show, failed)
