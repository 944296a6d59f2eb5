// Registers an IR image onto a visible one with nothing but OpenCV >= 5.1: cv::XFeat runs the
// graph `s2cv export MODEL --format cv-xfeat` wrote, then mutual-NN matching and MAGSAC++.
//
//   xfeat_register MODEL.onnx VISIBLE IR [OUT_DIR] [S]
//
// S is the input size the graph was exported for (default 640, cv::XFeat's own default).
// Writes OUT_DIR/H.yml (IR -> visible) and OUT_DIR/blend.png (IR warped onto the visible image).
#include <opencv2/3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 4) {
        std::cerr << "usage: " << argv[0] << " MODEL.onnx VISIBLE IR [OUT_DIR] [S]\n";
        return 2;
    }
    const std::string model = argv[1], visPath = argv[2], irPath = argv[3];
    const std::string outDir = argc > 4 ? argv[4] : ".";
    const int size = argc > 5 ? std::stoi(argv[5]) : 640;

    const cv::Mat vis = cv::imread(visPath, cv::IMREAD_COLOR), ir = cv::imread(irPath, cv::IMREAD_COLOR);
    if (vis.empty() || ir.empty()) {
        std::cerr << "cannot read " << (vis.empty() ? visPath : irPath) << "\n";
        return 2;
    }

    // 1024 keypoints per image, ranked by the network's score alone (threshold 0).
    cv::Ptr<cv::XFeat> xfeat = cv::XFeat::create(model, 1024, 0.0f, cv::Size(size, size));
    std::vector<cv::KeyPoint> kpVis, kpIr;
    cv::Mat descVis, descIr;
    xfeat->detectAndCompute(vis, cv::noArray(), kpVis, descVis);
    xfeat->detectAndCompute(ir, cv::noArray(), kpIr, descIr);

    std::vector<cv::DMatch> matches;  // IR -> visible, mutual nearest neighbours
    cv::BFMatcher(xfeat->defaultNorm(), /*crossCheck=*/true).match(descIr, descVis, matches);
    std::vector<cv::Point2f> ptsIr, ptsVis;
    for (const cv::DMatch& m : matches) {
        ptsIr.push_back(kpIr[m.queryIdx].pt);
        ptsVis.push_back(kpVis[m.trainIdx].pt);
    }
    if (ptsIr.size() < 4) {
        std::cerr << "only " << ptsIr.size() << " matches: cannot fit a homography\n";
        return 2;
    }
    cv::Mat inliers;
    const cv::Mat H = cv::findHomography(ptsIr, ptsVis, cv::USAC_MAGSAC, 3.0, inliers);
    if (H.empty()) {
        std::cerr << "no homography found from " << ptsIr.size() << " matches\n";
        return 2;
    }
    std::cout << "keypoints " << kpVis.size() << " / " << kpIr.size() << ", matches " << matches.size()
              << ", inliers " << cv::countNonZero(inliers) << "\nH (IR -> visible):\n" << H << "\n";

    cv::Mat warped, blend;
    cv::warpPerspective(ir, warped, H, vis.size());
    cv::addWeighted(vis, 0.5, warped, 0.5, 0.0, blend);
    cv::FileStorage(outDir + "/H.yml", cv::FileStorage::WRITE) << "H" << H;
    cv::imwrite(outDir + "/blend.png", blend);
    return 0;
}
