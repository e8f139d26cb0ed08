import { useEffect, useState } from 'preact/hooks';
import { api, describeOrigin, watch, when, type ChangeSet, type Computed, type Diff } from '../api';
import { href } from '../route';
import { Merge } from '../editor';
import { Failure, Reason, Tabs, message, useLoad } from './common';
import { isJson, pretty } from '../api';

/** A timeline of change sets, live as new ones arrive; pick two to diff;
 * roll back to any with a preview. */
export function History(props: { namespace: string; query: URLSearchParams }) {
  const ns = props.namespace;
  const key = props.query.get('key') ?? undefined;
  const [loaded, error] = useLoad(() => api.history(ns, key), [ns, key]);
  const [sets, setSets] = useState<ChangeSet[]>([]);
  const [live, setLive] = useState(false);
  const [picked, setPicked] = useState<number[]>([]);
  const [rollbackTo, setRollbackTo] = useState<number | null>(null);
  const [roles] = useLoad(() => api.roles(ns), [ns]);
  useEffect(() => {
    if (!loaded) return;
    setSets(loaded.change_sets);
    // Live from right after what was read: nothing missed, nothing twice.
    const from = loaded.revision + 1;
    return watch(ns, from, (set) => {
      if (key && !set.changes.some((c) => c.key === key)) return;
      setSets((old) => (old.some((s) => s.revision === set.revision) ? old : [set, ...old]));
    }, setLive);
  }, [loaded]);
  const pick = (revision: number, on: boolean) =>
    setPicked((p) => (on ? [...p.filter((r) => r !== revision), revision].slice(-2) : p.filter((r) => r !== revision)));
  const canWrite = roles?.write ?? false;
  return (
    <section>
      <Tabs namespace={ns} active="history" />
      <p class="meta">{key ? <span>Changes of <code>{key}</code></span> : 'Every change set'} · <span class={live ? 'badge ok' : 'badge'} data-testid="live">{live ? 'live' : 'connecting…'}</span> · pick two revisions to compare them</p>
      <Failure error={error} />
      {picked.length === 2 && <RevisionDiff ns={ns} from={Math.min(...picked)} to={Math.max(...picked)} />}
      {rollbackTo !== null && <RollbackPreview ns={ns} to={rollbackTo} onDone={() => setRollbackTo(null)} />}
      <ol class="timeline" data-testid="timeline">
        {sets.map((s) => (
          <li key={s.revision} data-testid={`rev-${s.revision}`}>
            <label><input type="checkbox" checked={picked.includes(s.revision)} onChange={(e) => pick(s.revision, e.currentTarget.checked)} data-testid={`pick-${s.revision}`} /> <strong>{s.revision}</strong></label>
            <span class="who">{s.actor || 'anonymous'}</span>
            <span class="why">{s.reason || <em>no reason</em>}</span>
            <span class="how">{describeOrigin(s.origin)}</span>
            <time>{when(s.time)}</time>
            {canWrite && !key ? <button class="small" onClick={() => setRollbackTo(s.revision)} data-testid={`rollback-${s.revision}`}>Roll back to this</button> : <span />}
            <span class="keys">{s.changes.map((c) => <code key={c.key} class={c.value === undefined ? 'deleted' : ''}>{c.key}</code>)}{(s.schema_changes?.length ?? 0) > 0 && <code>schema</code>}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}

export function DiffList(props: { entries: Diff[]; testid?: string; pick?: { picked: Set<string>; toggle: (key: string) => void; frozen?: boolean }; labels?: Record<string, string> }) {
  if (props.entries.length === 0) return <p data-testid={props.testid}>No differences.</p>;
  return (
    <div class="diffs" data-testid={props.testid}>
      {props.entries.map((d) => {
        const json = isJson(d.after?.content_type ?? d.before?.content_type, d.after?.value ?? d.before?.value);
        return (
          <details key={d.key} open={props.entries.length <= 5} data-testid={`diff-${d.key}`}>
            <summary>
              {props.pick && <input type="checkbox" checked={props.pick.picked.has(d.key)} disabled={props.pick.frozen} onClick={(e) => e.stopPropagation()} onChange={() => props.pick!.toggle(d.key)} data-testid={`tick-${d.key}`} />}
              <span class={`kind ${d.kind}`}>{props.labels?.[d.kind] ?? d.kind}</span> <code>{d.key}</code>
            </summary>
            <Merge before={pretty(d.before?.value ?? '', d.before?.content_type)} after={pretty(d.after?.value ?? '', d.after?.content_type)} json={json} />
          </details>
        );
      })}
    </div>
  );
}

function RevisionDiff(props: { ns: string; from: number; to: number }) {
  const [diff, error] = useLoad(() => api.diff(props.ns, props.from, undefined, props.to), [props.ns, props.from, props.to]);
  return (
    <div class="panel" data-testid="revision-diff">
      <h3>From revision {props.from} to {props.to}</h3>
      <Failure error={error} />
      {diff && <DiffList entries={diff.entries} />}
    </div>
  );
}

function RollbackPreview(props: { ns: string; to: number; onDone: () => void }) {
  const [preview, error] = useLoad(() => api.rollback(props.ns, props.to, true, ''), [props.ns, props.to]);
  const [reason, setReason] = useState('');
  const [result, setResult] = useState<Computed | null>(null);
  const [failure, setFailure] = useState('');
  const run = async () => {
    try { setResult(await api.rollback(props.ns, props.to, false, reason, preview?.revision)); } catch (e) { setFailure(message(e)); }
  };
  return (
    <div class="panel" data-testid="rollback-preview">
      <h3>Roll back {props.ns} to revision {props.to}</h3>
      <Failure error={error || failure} />
      {preview && !result && (
        <div>
          <p>Preview (dry run at revision {preview.revision}): {preview.changes.length} key(s) would change.</p>
          <DiffList entries={preview.changes} />
          <Reason value={reason} onInput={setReason} testid="rollback-reason" />
          <button class="primary" disabled={!reason.trim() || preview.changes.length === 0} onClick={run} data-testid="rollback-confirm">Roll back</button>
          <button class="link" onClick={props.onDone}>Cancel</button>
        </div>
      )}
      {result && <p data-testid="rollback-done">Rolled back: revision {result.revision}. <button class="link" onClick={props.onDone}>Close</button></p>}
    </div>
  );
}

export { href };
