// Charts: Chart.js with only the parts the dashboard uses (tree-shaken by the build).
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, Filler, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip);

const VIEWS = "#4f46e5";
const IMPRESSIONS = "#f59e0b";
const font = { family: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size: 12 };
Chart.defaults.font = font;
Chart.defaults.color = "#475569";

const charts = new Map();

function draw(canvas, config) {
  const old = charts.get(canvas.id);
  if (old) old.destroy();
  const chart = new Chart(canvas, config);
  charts.set(canvas.id, chart);
  return chart;
}

const integerAxis = {
  beginAtZero: true,
  ticks: { precision: 0 },
  grid: { color: "#e2e8f0" },
};

// Views and Impressions per day: two lines, never summed (they measure different things).
export function dailyChart(canvas, labels, views, impressions) {
  return draw(canvas, {
    type: "line",
    data: {
      labels,
      datasets: [
        { label: "Views", data: views, borderColor: VIEWS, backgroundColor: "rgba(79, 70, 229, 0.12)", fill: true, tension: 0.25, pointRadius: labels.length > 60 ? 0 : 2, borderWidth: 2 },
        { label: "Impressions", data: impressions, borderColor: IMPRESSIONS, backgroundColor: IMPRESSIONS, fill: false, tension: 0.25, pointRadius: labels.length > 60 ? 0 : 2, borderWidth: 2, borderDash: [5, 4] },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: { x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } }, y: integerAxis },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    },
  });
}

export function hoursChart(canvas, labels, views) {
  return draw(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label: "Views", data: views, backgroundColor: VIEWS, borderRadius: 3 }] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 6 } }, y: integerAxis },
      plugins: { legend: { display: false } },
    },
  });
}

// What a chart shows, for tests and assistive tech: the datasets by label.
export function chartData(id) {
  const chart = charts.get(id);
  if (!chart) return null;
  return Object.fromEntries(chart.data.datasets.map((set) => [set.label, set.data.slice()]));
}
