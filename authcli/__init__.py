"""authcli: the reference command-line client of the token service.

``python -m authcli login`` signs a person in with the device authorization grant (RFC 8628) through the
product API, keeps the tokens in a private file, and hands out fresh access tokens to scripts
(``python -m authcli token``), rotating the refresh token as it goes. Standard library only, so it runs
from a checkout with any Python 3.9 or newer.
"""

__version__ = "0.1.0"
