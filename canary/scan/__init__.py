"""The leak scanner behind ``canary scan`` (docs/scan.md) and HIBP sync (docs/hibp.md).

    inputs, readers, spreadsheet   files, archives, encodings -> UTF-8 chunks
    forms, prefilter, patterns     what to look for; cache: the compiled set on disk
    engines, matcher, runner       Hyperscan/pyahocorasick over chunks, on every core
    records, verify                hits -> confirmed matches inside their record
    attribution, shape             per source: window, completeness, holds more, export shape
    result, report, service        the report model, its renderings, the library entry points
    hibp                           Have I Been Pwned domain search -> breach hits
"""
