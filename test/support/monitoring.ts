import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { PACKAGE_ROOT } from '../../src/paths.js';

/** What operators load into Prometheus and Grafana (deploy/prometheus, deploy/grafana), read as the tests need it. */

export const PROMETHEUS_DIR = join(PACKAGE_ROOT, 'deploy', 'prometheus');
export const RULES = join(PROMETHEUS_DIR, 'permsync-alerts.yml');
export const RULE_TESTS = join(PROMETHEUS_DIR, 'permsync-alerts.test.yml');
const DASHBOARD = join(PACKAGE_ROOT, 'deploy', 'grafana', 'permsync.json');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTests {
  tests: {
    name: string;
    input_series: { series: string; values: string }[];
    alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
  }[];
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  templating: { list: { type: string; name: string; query: unknown }[] };
  panels: Panel[];
}

export async function rules(): Promise<Rule[]> {
  const file = parse(await readFile(RULES, 'utf8')) as { groups: { rules: Rule[] }[] };
  return file.groups.flatMap((g) => g.rules);
}

export async function ruleTests(): Promise<RuleTests> {
  return parse(await readFile(RULE_TESTS, 'utf8')) as RuleTests;
}

export async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, those inside rows included. */
export function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

export async function dashboardExprs(): Promise<{ panel: Panel; refId: string; expr: string }[]> {
  return allPanels((await dashboard()).panels).flatMap((panel) => (panel.targets ?? []).map((t) => ({ panel, refId: t.refId, expr: t.expr })));
}

/** The permsync metrics a PromQL expression names. */
export const metricNames = (expr: string) => [...expr.matchAll(/\bpermsync_[a-z0-9_]+\b/g)].map((m) => m[0]);

/** The metric and label names of a promtool input series: `name{label="value",...}`. */
export function seriesShape(series: string): { name: string; labels: string[] } {
  const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?$/.exec(series);
  if (!match) throw new Error(`not a series: ${series}`);
  return { name: match[1] as string, labels: [...(match[2] ?? '').matchAll(/(\w+)="/g)].map((m) => m[1] as string) };
}

/** The labels Prometheus adds to what it scrapes (job, instance) or an operator adds as a target label (source). */
export const TARGET_LABELS = ['job', 'instance', 'source'];
