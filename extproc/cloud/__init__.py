"""Cloud providers' credentials: AWS SigV4 (Bedrock) and Google OAuth tokens
(Vertex AI), refreshed in the background. A leaf package: it imports nothing
else of extproc, so translators, config and core can all use it."""
