// An HTTP function in JavaScript: the standard fetch event, plus Spin's key-value store.
import { Store } from 'fermyon:spin/key-value@2.0.0';

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const store = Store.open('default');
  const seen = store.get('visits'); // a Uint8Array, or undefined
  const visits = (seen ? Number(new TextDecoder().decode(seen)) : 0) + 1;
  store.set('visits', new TextEncoder().encode(String(visits)));
  const path = request.headers.get('spin-path-info') || '/';
  return Response.json({ hello: 'from JavaScript', path, visits });
}
