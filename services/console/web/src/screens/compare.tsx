import { useState } from 'preact/hooks';
import { api, type Computed } from '../api';
import { go } from '../route';
import { Failure, Reason, message, useLoad } from './common';
import { DiffList } from './history';

const LABELS = { added: 'missing in target', removed: 'extra in target', changed: 'changed' };

/** Namespace vs namespace (staging vs prod), or one namespace at two
 * revisions; tick keys and promote them with a preview. */
export function Compare(props: { query: URLSearchParams }) {
  const q = props.query;
  const [form, setForm] = useState({ a: q.get('a') ?? '', ra: q.get('ra') ?? '', b: q.get('b') ?? '', rb: q.get('rb') ?? '' });
  const submit = (e: Event) => { e.preventDefault(); go(['compare'], form); };
  const a = q.get('a') ?? '', b = q.get('b') ?? '';
  const ra = q.get('ra') ? Number(q.get('ra')) : undefined, rb = q.get('rb') ? Number(q.get('rb')) : undefined;
  return (
    <section>
      <h2>Compare</h2>
      <form class="filters" onSubmit={submit}>
        <input placeholder="source namespace (e.g. payments/staging)" value={form.a} onInput={(e) => setForm({ ...form, a: e.currentTarget.value })} data-testid="compare-a" />
        <input placeholder="@revision" class="short" value={form.ra} onInput={(e) => setForm({ ...form, ra: e.currentTarget.value })} data-testid="compare-ra" />
        <span>vs</span>
        <input placeholder="target namespace (empty: the same)" value={form.b} onInput={(e) => setForm({ ...form, b: e.currentTarget.value })} data-testid="compare-b" />
        <input placeholder="@revision" class="short" value={form.rb} onInput={(e) => setForm({ ...form, rb: e.currentTarget.value })} data-testid="compare-rb" />
        <button type="submit" data-testid="compare-submit">Compare</button>
      </form>
      {a && (b ? <Namespaces a={a} ra={ra} b={b} rb={rb} /> : <Revisions ns={a} from={ra} to={rb} />)}
    </section>
  );
}

function Revisions(props: { ns: string; from?: number; to?: number }) {
  const [diff, error] = useLoad(() => api.diff(props.ns, props.from, undefined, props.to), [props.ns, props.from, props.to]);
  return (
    <div>
      <Failure error={error} />
      {diff && <p class="meta">{props.ns} from revision {diff.from_revision} to {diff.to_revision}</p>}
      {diff && <DiffList entries={diff.entries} testid="compare-diff" />}
    </div>
  );
}

function Namespaces(props: { a: string; ra?: number; b: string; rb?: number }) {
  // From the target's state to the source's: what promoting would change.
  const [diff, error] = useLoad(() => api.diff(props.b, props.rb, props.a, props.ra), [props.a, props.ra, props.b, props.rb]);
  const [roles] = useLoad(() => api.roles(props.b), [props.b]);
  const [shown, setShown] = useState({ added: true, removed: true, changed: true });
  const [picked, setPicked] = useState<Set<string>>(new Set());
  // What the preview was taken of: confirming promotes exactly that.
  const [preview, setPreview] = useState<{ computed: Computed; keys: string[]; deleteMissing: boolean } | null>(null);
  const [failure, setFailure] = useState('');
  const toggle = (key: string) => {
    if (preview) return;
    setPicked((p) => { const n = new Set(p); n.has(key) ? n.delete(key) : n.add(key); return n; });
  };
  const entries = (diff?.entries ?? []).filter((d) => shown[d.kind]);
  const canPromote = roles?.write ?? false;
  const previewPromotion = async () => {
    setFailure('');
    const keys = [...picked];
    // A ticked key that only the target has is deleted from it.
    const deleteMissing = (diff?.entries ?? []).some((d) => d.kind === 'removed' && picked.has(d.key));
    try {
      const computed = await api.promote(props.a, props.b, keys, deleteMissing, true, '', undefined, diff?.to_revision);
      setPreview({ computed, keys, deleteMissing });
    } catch (e) { setFailure(message(e)); }
  };
  return (
    <div>
      <Failure error={error || failure} />
      {diff && <p class="meta">source {props.a}@{diff.to_revision} → target {props.b}@{diff.from_revision}</p>}
      <div class="filters">
        {(['added', 'removed', 'changed'] as const).map((k) => (
          <label class="toggle" key={k}><input type="checkbox" checked={shown[k]} onChange={(e) => setShown({ ...shown, [k]: e.currentTarget.checked })} data-testid={`show-${k}`} /> {LABELS[k]} ({(diff?.entries ?? []).filter((d) => d.kind === k).length})</label>
        ))}
      </div>
      {diff && <DiffList entries={entries} testid="compare-diff" labels={LABELS} pick={canPromote ? { picked, toggle, frozen: preview !== null } : undefined} />}
      {canPromote && picked.size > 0 && !preview && (
        <button class="primary" onClick={previewPromotion} data-testid="promote-preview">Preview promoting {picked.size} key(s) into {props.b}</button>
      )}
      {preview && <PromoteConfirm a={props.a} b={props.b} keys={preview.keys} deleteMissing={preview.deleteMissing} preview={preview.computed} sourceRevision={diff?.to_revision} onDone={() => { setPreview(null); setPicked(new Set()); }} />}
    </div>
  );
}

function PromoteConfirm(props: { a: string; b: string; keys: string[]; deleteMissing: boolean; preview: Computed; sourceRevision?: number; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const [done, setDone] = useState<Computed | null>(null);
  const [failure, setFailure] = useState('');
  const run = async () => {
    try { setDone(await api.promote(props.a, props.b, props.keys, props.deleteMissing, false, reason, props.preview.revision, props.sourceRevision)); } catch (e) { setFailure(message(e)); }
  };
  return (
    <div class="panel" data-testid="promote-panel">
      <h3>Promote into {props.b}</h3>
      {!done && <p>Preview (dry run at {props.b}@{props.preview.revision}): {props.preview.changes.length} change(s).</p>}
      {!done && <DiffList entries={props.preview.changes} testid="promote-diff" />}
      <Failure error={failure} />
      {!done && <Reason value={reason} onInput={setReason} testid="promote-reason" />}
      {!done && <button class="primary" disabled={!reason.trim()} onClick={run} data-testid="promote-confirm">Promote</button>}
      {!done && <button class="link" onClick={props.onDone}>Cancel</button>}
      {done && <p data-testid="promote-done">Promoted: {props.b} is at revision {done.revision}. <button class="link" onClick={() => { props.onDone(); location.reload(); }}>Compare again</button></p>}
    </div>
  );
}
