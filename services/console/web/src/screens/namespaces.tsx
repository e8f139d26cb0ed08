import { api, when, type NamespaceView } from '../api';
import { href } from '../route';
import { Failure, useLoad } from './common';

/** Namespaces grouped by their first segment (payments/ → staging, prod). */
export function Namespaces() {
  const [all, error] = useLoad(() => api.namespaces(), []);
  const groups = new Map<string, NamespaceView[]>();
  for (const ns of all ?? []) {
    const group = ns.name.includes('/') ? ns.name.split('/')[0] + '/' : '';
    groups.set(group, [...(groups.get(group) ?? []), ns]);
  }
  return (
    <section>
      <h2>Namespaces</h2>
      <Failure error={error} />
      {all && all.length === 0 && <p>No namespaces yet.</p>}
      {[...groups.entries()].map(([group, list]) => (
        <div class="group" key={group}>
          {group && <h3>{group}</h3>}
          <table data-testid="namespaces">
            <thead><tr><th>Namespace</th><th>Head</th><th>Keys</th><th>Last change</th><th>Fleet</th></tr></thead>
            <tbody>
              {list.map((ns) => (
                <tr key={ns.name} data-testid={`ns-${ns.name}`}>
                  <td><a href={href(['ns', ns.name])}>{group ? ns.name.slice(group.length) : ns.name}</a></td>
                  <td class="num">{ns.revision}</td>
                  <td class="num">{ns.key_count}</td>
                  <td>{ns.last_change ? <span>{ns.last_change.actor || 'anonymous'} · {ns.last_change.reason || <em>no reason</em>} · <time>{when(ns.last_change.time)}</time></span> : '—'}</td>
                  <td>{ns.fleet ? <span>{ns.fleet.applied} applied{ns.fleet.pending + ns.fleet.stale > 0 && <span class="badge">{ns.fleet.pending + ns.fleet.stale} behind</span>}{ns.fleet.rejected > 0 && <span class="badge bad">{ns.fleet.rejected} rejected</span>}</span> : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  );
}
