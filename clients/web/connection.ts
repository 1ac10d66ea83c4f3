/** The connection status line in the top bar: the client's connection state, as text. */
import type { ConnectionState } from './client.ts';
import { ui } from './dom.ts';

export function setConnection(view: { status: string; text: string }): void {
  ui.connection.dataset.state = view.status;
  ui.connection.textContent = view.text;
}

export function renderConnection(state: ConnectionState): void {
  const transport = state.transport === 'sse' ? 'SSE' : state.transport === 'websocket' ? 'WebSocket' : undefined;
  switch (state.status) {
    case 'connecting':
      return setConnection({ status: 'connecting', text: 'Connecting…' });
    case 'connected':
      return setConnection({ status: 'connected', text: transport ? `Connected · ${transport}` : 'Connected' });
    case 'reconnecting':
      return setConnection({ status: 'reconnecting', text: `Reconnecting…${state.error ? ` (${state.error.message})` : ''}` });
    case 'closed':
      return setConnection({ status: 'closed', text: state.error ? `Closed: ${state.error.message}` : 'Closed' });
  }
}
