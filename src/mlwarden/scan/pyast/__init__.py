"""Static analysis of Python source with the ast module: name resolution, constant folding
and the event collector behind ``mlwarden.scan.remote_code``. Nothing here imports, compiles
to bytecode or executes the analysed code."""
