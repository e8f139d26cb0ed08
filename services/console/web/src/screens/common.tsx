import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api';

/** Loads once per change of `deps`; answers [data, error, reload]. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [T | undefined, string, () => void] {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError('');
    load().then((d) => live && setData(d)).catch((e) => live && setError(message(e)));
    return () => { live = false; };
  }, [...deps, tick]);
  return [data, error, () => setTick((t) => t + 1)];
}

export function message(e: unknown): string {
  if (e instanceof ApiError) return e.field ? `${e.message}` : e.message;
  return String(e);
}

export function Failure(props: { error: string }) {
  return props.error ? <p class="error" role="alert">{props.error}</p> : null;
}

export function Tabs(props: { namespace: string; active: string }) {
  const ns = encodeURIComponent(props.namespace);
  const tab = (id: string, label: string, to: string) => (
    <a class={props.active === id ? 'tab active' : 'tab'} href={to} data-testid={`tab-${id}`}>{label}</a>
  );
  return (
    <div class="tabs">
      <h2 data-testid="namespace-title">{props.namespace}</h2>
      {tab('keys', 'Keys', `#/ns/${ns}`)}
      {tab('history', 'History', `#/history/${ns}`)}
      {tab('schemas', 'Schemas', `#/schemas/${ns}`)}
      {tab('fleet', 'Fleet & rollouts', `#/fleet/${ns}`)}
      <a class="tab" href={`#/compare?a=${ns}`}>Compare…</a>
    </div>
  );
}

/** A reason box: every change says why. */
export function Reason(props: { value: string; onInput: (v: string) => void; testid?: string }) {
  return (
    <label class="reason">Reason (required)
      <input value={props.value} onInput={(e) => props.onInput(e.currentTarget.value)} data-testid={props.testid ?? 'reason'} placeholder="why this change" />
    </label>
  );
}
