"""The response cache: identical requests answered by the gateway.

* `policy`: a route's compiled `cache:` settings (immutable).
* `key`: what determines an answer, hashed (route, provider, mapped model,
  the request body without the fields that do not change the answer, the
  consumer unless the route shares its entries).
* `entry`: a cached answer: the client API's non-stream body plus its usage.
* `store`: a bounded in-process LRU, or Redis shared by every replica; both
  bounded in time (a slow store is a miss, never a client error).
* `synth`: a cached answer as a stream in its API's event format.
* `reassemble`: a streamed answer (the bytes the client got) back into the
  API's non-stream body, only when the stream completed normally.
* `service`: the exchange's two hooks: look up (after every check) and store
  (at the response's end, off the client's path).
"""
