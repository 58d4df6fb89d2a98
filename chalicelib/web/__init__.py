"""The built front end the API serves: the tracker script and the artist dashboard."""
