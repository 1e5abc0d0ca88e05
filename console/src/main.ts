import { createApp } from "vue";
import App from "./App.vue";
import { router } from "./router";
import "uplot/dist/uPlot.min.css";
import "./style.css";

createApp(App).use(router).mount("#app");
