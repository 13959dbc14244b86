"""Dependency supply chain: audit of requirement/lock/config files (``mlwarden deps``),
static package inspection (``deps inspect``), ML advisories and environment posture
(``mlwarden doctor``). Nothing here imports, builds or installs the packages it looks at."""
