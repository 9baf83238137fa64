// The peer of Rampart's edge in scripts/bench-edge-vs-plain.sh: the least a caching Worker
// does. A hit is `caches.default.match` and return; a miss fetches ORIGIN_URL and stores the
// answer in the background.
export default {
  async fetch(request, env, ctx) {
    const hit = await caches.default.match(request);
    if (hit) return hit;
    const url = new URL(request.url);
    const response = await fetch(new URL(url.pathname + url.search, env.ORIGIN_URL), request);
    if (response.ok) ctx.waitUntil(caches.default.put(request, response.clone()));
    return response;
  },
};
