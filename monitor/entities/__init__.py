"""Entity linking: tickers from the text (``$CASHTAGS``) and from company names in a watchlist."""
