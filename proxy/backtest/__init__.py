"""`dmgate simulate`: replay exported DM history against policy files.

`inputs` reads the exports (detected by content, streamed), `spool` keeps the events on a
scratch file in time order, `replay` judges each sent DM through the real policy engine and
store with the clock set to the message's time (the `Judge` seam), and `report` turns the
results into a terminal summary, JSON and one self-contained HTML file.
"""
