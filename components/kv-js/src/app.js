// A JavaScript guest for ledge: wasi:http/incoming-handler@0.2 via the
// StarlingMonkey fetch-event API, plus fermyon:spin/key-value@2.0.0.
import { Store } from 'fermyon:spin/key-value@2.0.0';

const enc = new TextEncoder();
const dec = new TextDecoder();

function json(status, value) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

// result<T, error> imports return T or throw; the thrown value's `payload`
// is the WIT `error` variant, e.g. { tag: 'no-such-store' }.
function describe(e) {
  return e && e.payload ? e.payload : String(e);
}

async function handle(request) {
  const url = new URL(request.url);
  const path = url.pathname;
  let store;
  try {
    store = Store.open('default');
  } catch (e) {
    return json(500, { error: 'open', detail: describe(e) });
  }

  if (path === '/js' || path === '/js/') {
    if (request.method !== 'GET') return json(405, { error: 'method not allowed' });
    const old = store.get('js-visits'); // Uint8Array | undefined
    const visits = (old ? parseInt(dec.decode(old), 10) || 0 : 0) + 1;
    store.set('js-visits', enc.encode(String(visits)));
    return json(200, { language: 'javascript', visits });
  }

  if (path.startsWith('/js/kv/') && path.length > '/js/kv/'.length) {
    const key = decodeURIComponent(path.slice('/js/kv/'.length));
    switch (request.method) {
      case 'GET': {
        const value = store.get(key);
        if (value === undefined) return json(404, { error: 'not found', key });
        return new Response(value, {
          status: 200,
          headers: { 'content-type': 'application/octet-stream' },
        });
      }
      case 'PUT': {
        const body = new Uint8Array(await request.arrayBuffer());
        store.set(key, body);
        return new Response(null, { status: 204 });
      }
      case 'DELETE': {
        store.delete(key);
        return new Response(null, { status: 204 });
      }
      default:
        return json(405, { error: 'method not allowed' });
    }
  }

  return json(404, { error: 'no route', path });
}

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));
