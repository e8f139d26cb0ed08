import { useState } from 'preact/hooks';
import { api, when, type Rollout } from '../api';
import { Failure, Reason, Tabs, message, useLoad } from './common';

/** What the fleet runs: clients by state with their errors, the head
 * revision's status, and the rollouts with pause/resume/abort/promote. */
export function Fleet(props: { namespace: string }) {
  const ns = props.namespace;
  const [fleet, error] = useLoad(() => api.clients(ns), [ns]);
  const [rollouts, rolloutError, reload] = useLoad(() => api.rollouts(ns), [ns]);
  const [roles] = useLoad(() => api.roles(ns), [ns]);
  const s = fleet?.status;
  return (
    <section>
      <Tabs namespace={ns} active="fleet" />
      <Failure error={error || rolloutError} />
      {s && (
        <p class="meta" data-testid="revision-status">
          Revision {s.revision}: {s.applied} applied, {s.pending} pending, {s.stale} stale, {s.rejected} rejected, {s.disconnected} disconnected
        </p>
      )}
      {s?.rejections.map((r) => <p class="error" key={r.error}>{r.count} rejected at {r.step}: {r.error} ({r.client_ids.slice(0, 5).join(', ')})</p>)}
      {fleet && fleet.clients.length > 0 && (
        <table data-testid="clients">
          <thead><tr><th>Client</th><th>State</th><th>Applied</th><th>Delivered</th><th>Agent</th><th>Labels</th><th>Last error</th><th>Seen</th></tr></thead>
          <tbody>
            {fleet.clients.map((c) => (
              <tr key={c.client_id}>
                <td>{c.client_id}</td>
                <td><span class={`badge state-${c.state}`}>{c.state}</span></td>
                <td class="num">{c.applied_revision}</td>
                <td class="num">{c.delivered_revision}</td>
                <td>{c.agent}</td>
                <td>{Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(', ')}</td>
                <td>{c.last_error ? `${c.last_error.step}: ${c.last_error.error} (@${c.last_error.revision})` : ''}</td>
                <td><time>{when(c.last_seen)}</time></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {fleet && fleet.clients.length === 0 && <p>No client reports on this namespace.</p>}
      <h3>Rollouts</h3>
      {rollouts && rollouts.length === 0 && <p>No rollouts.</p>}
      {rollouts?.map((r) => <RolloutView key={r.id} rollout={r} canWrite={roles?.write ?? false} onChanged={reload} />)}
    </section>
  );
}

function RolloutView(props: { rollout: Rollout; canWrite: boolean; onChanged: () => void }) {
  const r = props.rollout;
  const [reason, setReason] = useState('');
  const [failure, setFailure] = useState('');
  const live = r.state === 'RUNNING' || r.state === 'PAUSED';
  const act = async (action: string) => {
    try { await api.rolloutAction(r.namespace, r.id, action, reason, r.version); props.onChanged(); } catch (e) { setFailure(message(e)); }
  };
  return (
    <div class="panel" data-testid={`rollout-${r.id}`}>
      <h3>{r.id} <span class="badge">{r.state}</span> step {r.step + 1} of {r.strategy.steps.length} ({r.percent}%)</h3>
      <ol class="steps">{r.strategy.steps.map((s, i) => <li key={i} class={i < r.step ? 'done' : i === r.step ? 'now' : ''}>{s.percent}% · bake {Math.round(s.bake)} s</li>)}</ol>
      <ul class="transitions">{r.transitions.map((t, i) => <li key={i}>{t.kind} at step {t.step + 1} by {t.actor || t.triggered_by}{t.reason ? `: ${t.reason}` : ''}</li>)}</ul>
      <Failure error={failure} />
      {live && props.canWrite && (
        <div class="actions">
          <Reason value={reason} onInput={setReason} testid={`rollout-reason-${r.id}`} />
          {r.state === 'RUNNING' && <button disabled={!reason.trim()} onClick={() => act('pause')}>Pause</button>}
          {r.state === 'PAUSED' && <button disabled={!reason.trim()} onClick={() => act('resume')}>Resume</button>}
          <button class="danger" disabled={!reason.trim()} onClick={() => act('abort')}>Abort</button>
          <button class="primary" disabled={!reason.trim()} onClick={() => act('promote')}>Promote to 100%</button>
        </div>
      )}
    </div>
  );
}
