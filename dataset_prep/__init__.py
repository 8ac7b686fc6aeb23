"""Stage scripts: thin command-line front ends over :mod:`recbole_qbert` modules."""
