"""Staff insight: the numbers a biller acts on (adoption, collections, receivables, reminder yield, recovery,
invitations), read with database aggregates; the CSV reports built on them; and the SVG charts that draw them.

`selectors.insight_report` reads, `exports` writes CSV, `charts` draws, `sources` is where notifications and accounts
plug in their figures (billing never imports them). The admin view is billing/admin/insight.py.
"""
