"""console: the web console's pages and assets (a single-page app that calls the Connect API
from the browser, as the SDK does); its routes have no authorizer."""
