"""Post-stream review (复盘): sessions, per-minute mood, peaks, products, sales links, HTML/CSV/JSON."""
