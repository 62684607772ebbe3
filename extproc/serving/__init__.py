"""Serving: one process's server (`server.Server`: the current config's
`Generation`, budget, metrics, a transport) and its supervision
(`supervise`: signals, reload, file watch; `workers`: worker processes).

Imports go one way: cli -> serving -> transport -> core.
"""
